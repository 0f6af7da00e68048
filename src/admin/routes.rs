//! The admin listener's one route table: `/healthz`, `/metrics`, every `/api/...` path with
//! the one method it answers (HEAD too where that is GET), and the UI's files for everything
//! else. Authentication and
//! the CSRF check run here, in front of every API route but the session ones, and the
//! same-origin JSON check in front of every state-changing one; successful
//! GET answers get their ETag answered here (a 304 when the client has it).

use super::{backup, deliveries, errors, events, fasten, guard, headers, meta, session, stats, ui};
use super::{Admin, ApiError, Request};
use crate::clock;
use http::{Method, StatusCode};
use std::sync::Arc;
use warp::Reply;

/// What a path below `/api/` names.
enum Route<'a> {
    Session,
    Login,
    Logout,
    Meta,
    Stats,
    Chart,
    Backup,
    Deliveries,
    Delivery(&'a str),
    Events,
    Event(&'a str),
    ReplayEvent(&'a str),
    ReplayMatching,
    Errors,
    Connections,
    Connection(&'a str),
    Resource {
        connection: &'a str,
        kind: &'a str,
        id: &'a str,
    },
    ExportFile {
        task: &'a str,
        file: &'a str,
    },
}

impl<'a> Route<'a> {
    /// The route `path` names, and the one method it answers.
    fn parse(path: &'a str) -> Option<(Method, Route<'a>)> {
        let parts: Vec<&'a str> = path.trim_matches('/').split('/').collect();
        let (get, post) = (Method::GET, Method::POST);
        Some(match parts.as_slice() {
            ["session"] => (get, Route::Session),
            ["login"] => (post, Route::Login),
            ["logout"] => (post, Route::Logout),
            ["meta"] => (get, Route::Meta),
            ["stats"] => (get, Route::Stats),
            ["chart"] => (get, Route::Chart),
            ["backup"] => (post, Route::Backup),
            ["deliveries"] => (get, Route::Deliveries),
            ["deliveries", id] => (get, Route::Delivery(id)),
            ["events"] => (get, Route::Events),
            ["events", id] => (get, Route::Event(id)),
            ["events", id, "replay"] => (post, Route::ReplayEvent(id)),
            ["replay"] => (post, Route::ReplayMatching),
            ["errors"] => (get, Route::Errors),
            ["connections"] => (get, Route::Connections),
            ["connections", id] => (get, Route::Connection(id)),
            ["connections", connection, "resources", kind, id] => (
                get,
                Route::Resource {
                    connection,
                    kind,
                    id,
                },
            ),
            ["exports", task, "files", file] => (get, Route::ExportFile { task, file }),
            _ => return None,
        })
    }

    /// What `admin.export_token` opens: reading connections and exports (GET only).
    fn reads_exports(&self) -> bool {
        matches!(
            self,
            Route::Connections
                | Route::Connection(_)
                | Route::Resource { .. }
                | Route::ExportFile { .. }
        )
    }

    /// The session routes check the caller themselves: they are how a browser gets in.
    fn before_authentication(&self) -> bool {
        matches!(self, Route::Session | Route::Login | Route::Logout)
    }
}

/// Answers one request to the admin listener.
///
/// Requests that read the store run off the async threads: the handlers read it
/// synchronously, which on a large log (a sparse filter, a search in bodies) or in cluster
/// mode (a round trip to the database each) takes long enough to hold up the receiver's acks
/// if it ran on the threads they share. Each runs on a thread of the blocking pool instead,
/// driving its own futures there (`Handle::block_on`: so handlers must not wait on tokio's
/// timers or sockets themselves, which a current-thread runtime would not drive from
/// there), and at most [`Store::read_concurrency`] at a time, so a flood of them takes
/// neither the receiver's threads, nor the blocking pool, nor (in cluster mode) the
/// database connections the writer needs. `/metrics` has a turn of its own, so a scrape
/// never waits behind slow searches. What reads no store (`/healthz`'s flag, the UI's
/// files, a login's password check, which has its own bound) is answered here directly.
///
/// [`Store::read_concurrency`]: crate::store::Store::read_concurrency
pub async fn dispatch(admin: Arc<Admin>, req: Request) -> warp::reply::Response {
    if req.path == "/healthz" {
        // Unhealthy while the store cannot take writes: what systemd and load balancers act
        // on. A flag, not a read: answered at once, whatever else waits.
        return match admin.store.health() {
            Ok(()) => warp::reply::json(&serde_json::json!({ "status": "ok" })).into_response(),
            Err(reason) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
        };
    }
    let turns = if req.path == "/metrics" {
        &admin.scraping
    } else if req.path.starts_with("/api/") && req.path != "/api/login" {
        &admin.answering
    } else {
        return answer_request(admin, req).await;
    };
    // Owned, and moved into the blocking job: a client that hangs up drops this future, but
    // not the job, which keeps its turn until it ends.
    let Ok(turn) = turns.clone().acquire_owned().await else {
        // The semaphores are never closed; this is the answer if one ever were.
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "hookd is stopping").into_response();
    };
    let (runtime, me) = (tokio::runtime::Handle::current(), admin.clone());
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        runtime.block_on(answer_request(me, req))
    })
    .await
    .unwrap_or_else(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request's handler failed",
        )
        .into_response()
    })
}

/// Everything but `/healthz`: the credential checks, then the API, metrics or the UI.
async fn answer_request(admin: Arc<Admin>, req: Request) -> warp::reply::Response {
    if !admin.config.admin.has_credential() && !guard::loopback_host(req.header("host")) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "without a configured credential the admin listener only answers to a loopback host name",
        )
        .into_response();
    }
    let answer = if req.path == "/metrics" {
        metrics(&admin, &req)
    } else if let Some(path) = req.path.strip_prefix("/api/") {
        api(&admin, &req, path).await
    } else {
        ui::asset(&req.method, &req.path)
    };
    answer.unwrap_or_else(ApiError::into_response)
}

/// Prometheus text, for the metrics token or whatever opens the API.
fn metrics(admin: &Admin, req: &Request) -> Result<warp::reply::Response, ApiError> {
    guard::metrics_access(admin, req)?;
    let text = crate::telemetry::render(&admin.store, admin.pruner.is_behind(), clock::now_ms());
    Ok(warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4").into_response())
}

async fn api(admin: &Admin, req: &Request, path: &str) -> Result<warp::reply::Response, ApiError> {
    let route = Route::parse(path);
    // The export token is checked before anything else: it opens its few read routes and
    // answers every other path (the session ones included) with why not.
    if guard::export_reader(admin, req) {
        return match route {
            Some((method, route)) if route.reads_exports() && req.is(&method) => {
                let response = answer(admin, req, route).await?;
                Ok(headers::conditional(response, req.header("if-none-match")))
            }
            _ => Err(guard::export_token_refused()),
        };
    }
    if guard::metrics_only(admin, req) {
        return Err(guard::metrics_token_refused());
    }
    let open = route
        .as_ref()
        .is_some_and(|(method, route)| req.is(method) && route.before_authentication());
    let caller = if open {
        None
    } else {
        Some(guard::authenticate(admin, req)?)
    };
    // Before the handler, so a forged login is refused without counting against the
    // operator's failed-login limit.
    guard::check_browser_write(caller.as_ref(), req)?;
    if let Some(caller) = &caller {
        guard::check_csrf(admin, caller, req)?;
    }
    let (method, route) = route.ok_or_else(|| ApiError::not_found("API path"))?;
    if !req.is(&method) {
        return Err(ApiError::method_not_allowed());
    }
    let response = answer(admin, req, route).await?;
    Ok(headers::conditional(response, req.header("if-none-match")))
}

/// Runs the route's handler. JSON documents become 200 answers with an ETag.
async fn answer(
    admin: &Admin,
    req: &Request,
    route: Route<'_>,
) -> Result<warp::reply::Response, ApiError> {
    let q = req.query.as_str();
    let json = |value: serde_json::Value| headers::json(&value);
    Ok(match route {
        Route::Session => json(session::info(admin, req)),
        Route::Login => session::login(admin, req).await?,
        Route::Logout => session::logout(admin, req)?,
        Route::Meta => json(meta::meta(admin)?),
        Route::Stats => json(stats::stats(admin)?),
        Route::Chart => json(stats::chart(admin, q)?),
        Route::Backup => backup::handle(admin, q).await?,
        Route::Deliveries => json(deliveries::list(admin, q)?),
        Route::Delivery(id) => json(deliveries::one(admin, id)?),
        Route::Events => json(events::list(admin, q)?),
        Route::Event(id) => json(events::one(admin, id, q)?),
        Route::ReplayEvent(id) => events::replay(admin, id, q)?,
        Route::ReplayMatching => events::replay_matching(admin, q)?,
        Route::Errors => json(errors::grouped(admin, q)?),
        Route::Connections => json(fasten::connections(admin)?),
        Route::Connection(id) => json(fasten::connection(admin, id)?),
        Route::Resource {
            connection,
            kind,
            id,
        } => fasten::resource(admin, connection, kind, id)?,
        Route::ExportFile { task, file } => fasten::export_file(admin, task, file)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_path_names_one_route_and_method() {
        let method = |path| Route::parse(path).map(|(m, _)| m);
        assert_eq!(method("deliveries"), Some(Method::GET));
        assert_eq!(method("/deliveries/"), Some(Method::GET));
        assert_eq!(method("events/e-1/replay"), Some(Method::POST));
        assert_eq!(method("exports/t/files/Patient"), Some(Method::GET));
        assert_eq!(method("backup"), Some(Method::POST));
        assert_eq!(method("events/a/b"), None);
        assert_eq!(method("nothing"), None);
        assert!(matches!(
            Route::parse("connections/c/resources/Patient/p"),
            Some((
                _,
                Route::Resource {
                    connection: "c",
                    kind: "Patient",
                    id: "p"
                }
            ))
        ));
    }
}
