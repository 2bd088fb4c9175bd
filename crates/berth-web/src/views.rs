//! Template structs (one per page) and the small view models they show.
//! HTML comes only from askama templates in `web/templates`.

use askama::Template;
use axum::response::Html;
use berth_core::App;
use berth_deploy::DockerStatus;

use crate::forms::{AppInput, FieldErrors};

/// Renders a page; a template error becomes a logged 500 rather than a panic.
pub fn render(page: &impl Template) -> Html<String> {
    match page.render() {
        Ok(html) => Html(html),
        Err(err) => {
            tracing::error!(error = %err, "template failed to render");
            Html("<!doctype html><title>berth</title><p>internal error".to_owned())
        }
    }
}

/// What every logged-in page knows: who is looking and the CSRF token for its forms.
pub struct Chrome {
    pub username: String,
    pub csrf: String,
}

impl From<&crate::auth::CurrentUser> for Chrome {
    fn from(user: &crate::auth::CurrentUser) -> Chrome {
        Chrome {
            username: user.username.clone(),
            csrf: user.csrf_token.clone(),
        }
    }
}

/// One app as lists and the app page show it.
pub struct AppRow {
    pub project: String,
    pub name: String,
    pub image: String,
    pub pinned: bool,
    pub status: &'static str,
    pub detail: String,
    pub address: Option<String>,
    pub transitional: bool,
}

impl From<&App> for AppRow {
    fn from(app: &App) -> AppRow {
        AppRow {
            project: app.project.to_string(),
            name: app.name.to_string(),
            image: app.image.to_string(),
            pinned: app.image.is_pinned(),
            status: app.status.as_str(),
            detail: app.status_detail.clone().unwrap_or_default(),
            address: app
                .upstream
                .or_else(|| {
                    app.host_port
                        .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p)))
                })
                .filter(|_| app.status == berth_core::AppStatus::Running)
                .map(|a| format!("http://{a}")),
            transitional: app.status.is_transitional(),
        }
    }
}

pub struct EngineView {
    pub ok: bool,
    pub version: String,
    pub api_version: String,
    pub os: String,
    pub running: u64,
    pub stopped: u64,
    pub images: u64,
    pub disk: Vec<(&'static str, String)>,
    pub target: String,
    pub error: String,
    pub hint: String,
    /// How the edge reaches apps (straight to containers, or published
    /// ports as a fallback), in words; empty before the check at start.
    pub reach: String,
    pub reach_direct: bool,
}

impl From<DockerStatus> for EngineView {
    fn from(status: DockerStatus) -> EngineView {
        match status {
            DockerStatus::Available(info) => EngineView {
                ok: true,
                version: info.version,
                api_version: info.api_version,
                os: info.os,
                running: info.containers_running,
                stopped: info.containers_stopped + info.containers_paused,
                images: info.images,
                disk: info
                    .disk
                    .map(|d| {
                        vec![
                            ("images", berth_deploy::human_bytes(d.images_bytes)),
                            ("containers", berth_deploy::human_bytes(d.containers_bytes)),
                            ("volumes", berth_deploy::human_bytes(d.volumes_bytes)),
                            (
                                "build cache",
                                berth_deploy::human_bytes(d.build_cache_bytes),
                            ),
                        ]
                    })
                    .unwrap_or_default(),
                target: String::new(),
                error: String::new(),
                hint: String::new(),
                reach: String::new(),
                reach_direct: false,
            },
            DockerStatus::Unavailable {
                target,
                error,
                hint,
            } => EngineView {
                ok: false,
                version: String::new(),
                api_version: String::new(),
                os: String::new(),
                running: 0,
                stopped: 0,
                images: 0,
                disk: Vec::new(),
                target,
                error,
                hint: hint.unwrap_or_default(),
                reach: String::new(),
                reach_direct: false,
            },
        }
    }
}

pub struct ProjectRow {
    pub name: String,
    pub app_count: i64,
    pub stack_count: usize,
    /// The project's apps and stacks.
    pub resources: Vec<crate::pages::resources::ResourceRow>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub message: String,
}

#[derive(Template)]
#[template(path = "setup.html")]
pub struct SetupPage {
    pub csrf: String,
    pub token: String,
    pub username: String,
    pub errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub csrf: String,
    pub username: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub chrome: Chrome,
    pub engine: EngineView,
    pub projects: Vec<ProjectRow>,
    pub project_input: String,
    pub errors: FieldErrors,
    pub app_count: usize,
    pub attention: Vec<AppRow>,
    /// Getting started; empty once every step is done.
    pub checklist: Vec<ChecklistItem>,
}

/// One step of the getting-started checklist on the dashboard.
pub struct ChecklistItem {
    /// The element id, `check-<step>`.
    pub id: &'static str,
    pub label: &'static str,
    pub href: String,
    pub done: bool,
    /// What is set, or how to do it.
    pub detail: String,
}

#[derive(Template)]
#[template(path = "apps.html")]
pub struct AppsPage {
    pub chrome: Chrome,
    pub apps: Vec<AppRow>,
}

#[derive(Template)]
#[template(path = "project.html")]
pub struct ProjectPage {
    pub chrome: Chrome,
    pub project: String,
    /// The project's apps and stacks.
    pub resources: Vec<crate::pages::resources::ResourceRow>,
    pub input: AppInput,
    pub errors: FieldErrors,
    pub flash: String,
}

#[derive(Template)]
#[template(path = "app.html")]
pub struct AppPage {
    pub chrome: Chrome,
    pub app: AppRow,
    pub port: u16,
    /// Where the app answers through the edge: its domains, then its default host.
    pub public_urls: Vec<String>,
    pub command: String,
    pub logs: Vec<String>,
    pub logs_error: String,
    pub flash: String,
    pub volumes: Vec<VolumeRow>,
    /// `rolling` or `recreate`, and why berth uses it.
    pub strategy: &'static str,
    pub strategy_why: String,
    /// The admin allowed bind mounts berth refuses by default.
    pub dangerous_mounts: bool,
    /// The add-volume form as typed, with its errors.
    pub volume_form: crate::forms::VolumeInput,
    pub volume_errors: FieldErrors,
}

/// One mount of an app, as its page and `GET …/apps/{app}/volumes` show it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct VolumeRow {
    /// The volume's name in the app.
    pub name: String,
    /// `volume` or `bind`.
    pub kind: &'static str,
    /// The Docker volume's name or the host path.
    pub source: String,
    /// Where it is mounted in the container.
    pub target: String,
    pub read_only: bool,
    /// Made by berth for a path the image declares with VOLUME.
    pub from_image: bool,
}

impl From<&berth_core::AppVolume> for VolumeRow {
    fn from(v: &berth_core::AppVolume) -> VolumeRow {
        VolumeRow {
            name: v.name.to_string(),
            kind: v.source.kind(),
            source: v.source.location().to_owned(),
            target: v.target.to_string(),
            read_only: v.read_only,
            from_image: v.from_image,
        }
    }
}

/// One volume on the Storage page.
pub struct StorageRow {
    pub name: String,
    pub bind: bool,
    /// `project/app` that mounts it, or empty when orphaned.
    pub owner: String,
    pub owner_url: String,
    pub target: String,
    pub project: String,
    pub made_for: String,
    pub size: String,
    pub in_use: bool,
    pub orphaned: bool,
}

impl From<&berth_deploy::StorageVolume> for StorageRow {
    fn from(v: &berth_deploy::StorageVolume) -> StorageRow {
        let (owner, owner_url, target) = match &v.owner {
            Some(o) => (
                format!("{}/{}", o.project, o.app),
                format!("/projects/{}/apps/{}", o.project, o.app),
                o.volume.target.to_string(),
            ),
            // A stack's volume: owned by the stack while it is installed.
            None => match &v.stack {
                None if v.database.is_some() => {
                    let db = v.database.clone().unwrap_or_default();
                    let url = match db.split_once('/') {
                        Some((p, d)) => format!("/projects/{p}/databases/{d}"),
                        None => String::new(),
                    };
                    (format!("database {db}"), url, String::new())
                }
                Some(stack) => (
                    format!("stack {stack}"),
                    match stack.split_once('/') {
                        Some((p, s)) => format!("/projects/{p}/stacks/{s}"),
                        None => String::new(),
                    },
                    String::new(),
                ),
                None => (String::new(), String::new(), String::new()),
            },
        };
        StorageRow {
            name: v.name.clone(),
            bind: v.bind,
            owner,
            owner_url,
            target,
            project: v.project.clone().unwrap_or_default(),
            made_for: v.made_for.clone().unwrap_or_default(),
            size: v
                .size_bytes
                .map(berth_deploy::human_bytes)
                .unwrap_or_else(|| "unknown".to_owned()),
            in_use: v.in_use(),
            orphaned: v.orphaned(),
        }
    }
}

#[derive(Template)]
#[template(path = "storage.html")]
pub struct StoragePage {
    pub chrome: Chrome,
    pub volumes: Vec<StorageRow>,
    pub flash: String,
    pub error: bool,
}

/// One certificate as the certificates page shows it.
pub struct CertRow {
    pub id: i64,
    pub domain: String,
    pub names: String,
    pub source: &'static str,
    pub issuer: String,
    /// `valid`, `expiring`, `expired` or `pending`.
    pub state: &'static str,
    pub expires: String,
    pub last_attempt: String,
    pub next_attempt: String,
    pub last_error: String,
    pub rate_limited: bool,
    pub renewable: bool,
    pub in_use: bool,
    /// An attempt is due now (running or about to).
    pub working: bool,
}

/// `2026-11-27 09:00 UTC (in 3 days)`, or `—` for none.
pub fn when(at: Option<i64>, now: i64) -> String {
    let Some(at) = at else {
        return "—".to_owned();
    };
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    let date = time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| at.to_string());
    let delta = at - now;
    let span = |s: i64| match s {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 2 * 86400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86400),
    };
    if delta >= 0 {
        format!("{date} (in {})", span(delta))
    } else {
        format!("{date} ({} ago)", span(-delta))
    }
}

#[derive(Template)]
#[template(path = "certificates.html")]
pub struct CertificatesPage {
    pub chrome: Chrome,
    pub refresh: bool,
    pub certificates: Vec<CertRow>,
    pub upload: crate::forms::CertificateUpload,
    pub upload_errors: FieldErrors,
    pub acme: berth_edge::acme::AcmeSettingsView,
    /// `production`, `staging` or `custom`.
    pub directory_choice: &'static str,
    /// The custom directory URL field's value.
    pub custom_url: String,
    pub hmac_hint: &'static str,
    pub acme_errors: FieldErrors,
    pub flash: String,
}
