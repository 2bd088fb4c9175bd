#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod catalogue;
pub mod coolify;
mod error;
pub mod interpolate;
pub mod normalize;
pub mod parse;
pub mod plan;
mod resolve;
pub mod supported;
pub mod template;
mod validate;

use std::collections::BTreeMap;

use berth_core::BindRules;
use serde_norway::Value;

pub use error::Problem;
pub use plan::{Format, Plan, Route};
pub use template::{Generated, GeneratedKind, Input, InputKind, Metadata};

use crate::coolify::Magic;
use crate::interpolate::Interpolator;
use crate::normalize::Ctx;
use crate::parse::Lines;
use crate::template::TemplateFile;

/// What the caller knows besides the file.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Values the user typed (`--input KEY=VALUE`, the install form).
    pub inputs: BTreeMap<String, String>,
    /// Values made earlier: generated secrets and route URLs/hosts. A name
    /// missing here plans with a placeholder (`<NAME>`), never a value.
    pub values: BTreeMap<String, String>,
    /// Where bind mounts may come from without a confirmation; `None`
    /// flags every absolute host path.
    pub bind_rules: Option<BindRules>,
}

fn placeholder(name: &str) -> String {
    format!("<{name}>")
}

/// Plans a file: parse → interpolate → normalize → resolve → validate.
/// The plan always comes back; [`Plan::is_ok`] says whether it can install.
pub fn plan(text: &str, format: Format, options: &Options) -> Plan {
    let mut plan = Plan::default();
    let mut route_vars: Vec<String> = Vec::new();
    let doc = match parse::parse(text) {
        Ok(doc) => doc,
        Err(problem) => {
            plan.errors.push(problem);
            return plan;
        }
    };
    let (root, mut compose_doc): (&[&str], Value) = match format {
        Format::Berth => match load_template(doc, text, &mut plan) {
            Ok((compose, vars)) => {
                route_vars = vars;
                (&["compose"], compose)
            }
            Err(problem) => {
                plan.errors.push(problem);
                return plan;
            }
        },
        Format::Coolify => {
            load_coolify(&doc, text, &mut plan);
            (&[], doc)
        }
        Format::Compose => (&[], doc),
    };
    let lines = Lines::new(text, root);
    let mut ctx = Ctx {
        lines: &lines,
        errors: Vec::new(),
        warnings: std::mem::take(&mut plan.warnings),
    };
    for input in &plan.inputs {
        let given = options.inputs.get(&input.name).or(input.default.as_ref());
        if let Err(message) = input.check(given.map_or("", String::as_str)) {
            ctx.errors.push(Problem::new(
                None,
                format!("inputs.{}", input.name),
                message,
            ));
        }
    }
    let declared: Vec<String> = plan
        .inputs
        .iter()
        .map(|i| i.name.clone())
        .chain(plan.generated.iter().map(|g| g.name.clone()))
        .chain(route_vars)
        .collect();
    let defaults: BTreeMap<String, Option<String>> = plan
        .inputs
        .iter()
        .map(|i| (i.name.clone(), i.default.clone()))
        .collect();
    let lookup = |name: &str| -> Option<String> {
        if let Some(v) = options.inputs.get(name) {
            return Some(v.clone());
        }
        if let Some(default) = defaults.get(name) {
            return default.clone();
        }
        let route_var = match (format, coolify::magic(name)) {
            (Format::Coolify, Some(Magic::Route { url, name, .. })) => {
                Some(coolify::route_variable(url, &name))
            }
            _ => None,
        };
        let key = route_var.as_deref().unwrap_or(name);
        let known = route_var.is_some() || declared.iter().any(|d| d == name);
        known.then(|| {
            options
                .values
                .get(key)
                .cloned()
                .unwrap_or_else(|| placeholder(key))
        })
    };
    let mut interpolator = if format == Format::Coolify {
        Interpolator::coolify(&lookup)
    } else {
        Interpolator::new(&lookup)
    };
    let failed = interpolator.interpolate_value(&mut compose_doc).err();
    for e in interpolator.missing.iter().chain(&failed) {
        let needle = match e {
            interpolate::InterpolationError::Required { name, .. } => format!("{name}:?"),
            _ => "${".to_owned(),
        };
        let line = text
            .lines()
            .position(|l| l.contains(&needle))
            .map(|n| n + 1);
        ctx.errors.push(Problem::new(line, "", e.to_string()));
    }
    // Variables the file reads that nothing declares become inputs, as the
    // install form must offer them.
    if format != Format::Berth {
        for r in &interpolator.references {
            let magic = format == Format::Coolify && coolify::magic(&r.name).is_some();
            if magic || plan.inputs.iter().any(|i| i.name == r.name) {
                continue;
            }
            let default = match (&r.default, &r.required) {
                (Some(d), _) => Some(d.clone()),
                (None, Some(text)) if format == Format::Coolify && !text.is_empty() => {
                    Some(text.clone())
                }
                _ => None,
            };
            plan.inputs
                .push(Input::variable(&r.name, default, r.required.is_some()));
        }
    }
    let compose = normalize::normalize(&compose_doc, &mut ctx);
    plan.name = compose.name.clone();
    plan.networks = compose.networks.clone();
    plan.secrets = compose.secrets.clone();
    plan.configs = compose.configs.clone();
    // `- KEY` without a value takes the variable KEY: the form offers it.
    if format != Format::Berth {
        let bare = compose
            .services
            .iter()
            .flat_map(|(_, env)| env.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k));
        for key in bare {
            let magic = format == Format::Coolify && coolify::magic(key).is_some();
            if !magic && !plan.inputs.iter().any(|i| &i.name == key) {
                plan.inputs.push(Input::variable(key, None, false));
            }
        }
    }
    let (mut services, volumes) = resolve::resolve(compose, &lookup);
    if format == Format::Coolify {
        // `SERVICE_URL_API_8080=/api` declares a route and holds its URL.
        for s in &mut services {
            for (k, v) in s.environment.iter_mut() {
                if let Some(Magic::Route { .. }) = coolify::magic(k)
                    && (v.is_empty() || v.starts_with('/'))
                {
                    *v = format!("{}{}", lookup(k).unwrap_or_default(), v);
                }
            }
        }
    }
    validate::validate(
        &services,
        &plan.secrets,
        &plan.configs,
        options.bind_rules.as_ref(),
        &mut ctx,
    );
    for route in &plan.routes {
        if !services.iter().any(|s| s.name == route.service) {
            ctx.errors.push(Problem::new(
                None,
                "routes",
                format!("route to {:?}, which is not a service", route.service),
            ));
        }
    }
    if format == Format::Compose && plan.routes.is_empty() {
        plan.routes = port_routes(&services, &mut ctx.warnings);
    }
    plan.services = services;
    plan.volumes = volumes;
    plan.warnings = ctx.warnings;
    plan.errors = ctx.errors;
    plan
}

/// Ports that speak something other than HTTP: a plain compose file's
/// `ports:` entry with one of these never becomes an edge route.
const NOT_HTTP: [u16; 16] = [
    21, 22, 25, 53, 110, 143, 389, 465, 587, 993, 1883, 3306, 5432, 5672, 6379, 27017,
];

/// A plain compose file names no routes: each service's first TCP port in
/// `ports:` that is not a well-known non-HTTP port becomes one (the edge
/// serves it; the port itself is published only when the user ticks it).
fn port_routes(services: &[plan::Service], warnings: &mut Vec<plan::Warning>) -> Vec<Route> {
    let mut routes = Vec::new();
    for s in services {
        let Some(port) = s
            .ports
            .iter()
            .filter(|p| p.protocol == "tcp")
            .map(|p| p.target)
            .find(|p| !NOT_HTTP.contains(p))
        else {
            continue;
        };
        warnings.push(plan::Warning {
            service: Some(s.name.clone()),
            kind: plan::WarningKind::Note,
            message: format!(
                "port {port} becomes a route through the edge; ports: entries are published on the host only when ticked"
            ),
        });
        routes.push(Route {
            service: s.name.clone(),
            port: Some(port),
            path: "/".to_owned(),
            url_variable: None,
            host_variable: None,
        });
    }
    routes
}

/// Takes a berth template's metadata, inputs, generated values and routes
/// into the plan; returns its compose document and the route variables
/// (which resolve like generated values: from `values`, or a placeholder
/// until the runtime knows the host).
fn load_template(doc: Value, text: &str, plan: &mut Plan) -> Result<(Value, Vec<String>), Problem> {
    let t = serde_norway::from_value::<TemplateFile>(doc).map_err(|e| {
        let message = e.to_string();
        // serde names an unknown field but not where it is.
        let line = e.location().map(|l| l.line()).or_else(|| {
            let key = format!("{}:", message.split('`').nth(1)?);
            text.lines()
                .position(|l| l.trim_start().trim_start_matches("- ").starts_with(&key))
                .map(|n| n + 1)
        });
        Problem::new(line, "", format!("not a berth template: {message}"))
    })?;
    plan.routes = t
        .routes
        .iter()
        .map(|r| Route {
            service: r.service.clone(),
            port: Some(r.port),
            path: r.path.clone(),
            url_variable: r.url.clone(),
            host_variable: r.host.clone(),
        })
        .collect();
    let route_vars = t
        .routes
        .into_iter()
        .flat_map(|r| [r.url, r.host])
        .flatten()
        .collect();
    plan.metadata = Some(t.metadata);
    plan.inputs = t.inputs;
    plan.generated = t.generated;
    Ok((t.compose, route_vars))
}

/// Takes a Coolify template's header, generated values and routes into
/// the plan.
fn load_coolify(doc: &Value, text: &str, plan: &mut Plan) {
    let (mut meta, ignored) = coolify::header(text);
    if ignored {
        plan.warnings.push(plan::Warning {
            service: None,
            kind: plan::WarningKind::Note,
            message: "Coolify marks this template `ignore: true` (hidden from its catalogue)"
                .to_owned(),
        });
    }
    if let Some(services) = doc.get("services").and_then(Value::as_mapping) {
        let (generated, routes) = coolify::scan(services);
        plan.generated = generated;
        plan.routes = routes;
    }
    // Coolify's header has no main service: the first route's is the one
    // users open.
    meta.service = plan.routes.first().map(|r| r.service.clone());
    plan.metadata = Some(meta);
}
