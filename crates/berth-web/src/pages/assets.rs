//! Static assets, embedded so berth stays a single file.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use crate::WebError;
use crate::routes::{Access, Table};

pub(crate) fn routes(t: &mut Table) {
    t.get(Access::Public, "/static/{file}", static_file);
}

const STYLE_CSS: &str = include_str!("../../../../web/static/style.css");
const ENV_CSS: &str = include_str!("../../../../web/static/env.css");
const ENV_JS: &str = include_str!("../../../../web/static/env.js");
const DEPLOY_LOG_JS: &str = include_str!("../../../../web/static/deploy-log.js");
const COMPOSE_FILE_JS: &str = include_str!("../../../../web/static/compose-file.js");
const BACKUP_PROGRESS_JS: &str = include_str!("../../../../web/static/backup-progress.js");

pub async fn static_file(Path(file): Path<String>) -> Result<Response, WebError> {
    let (body, content_type) = match file.as_str() {
        "style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
        "env.css" => (ENV_CSS, "text/css; charset=utf-8"),
        "env.js" => (ENV_JS, "text/javascript; charset=utf-8"),
        "deploy-log.js" => (DEPLOY_LOG_JS, "text/javascript; charset=utf-8"),
        "compose-file.js" => (COMPOSE_FILE_JS, "text/javascript; charset=utf-8"),
        "backup-progress.js" => (BACKUP_PROGRESS_JS, "text/javascript; charset=utf-8"),
        _ => return Err(WebError::NotFound("file")),
    };
    Ok((
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response())
}
