//! The registry's request handling (PROTOCOL.md §15), without sockets: a request (method,
//! path-and-query, headers, body), the client address and the time in, a response out.
//! [`Registry::handle`] is what the HTTP layer, the unit tests and the fuzz target call.
//!
//! Order of checks: rate limit (429) and declared size (413) before the body is read; route
//! (404, 405, 400); membership signature and clock (401); the verifier pinned for the registry
//! id (403); the body (400); the slot's own signature (403); seq (409); capacity (507).

use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use http::HeaderMap;

use super::limits::{Limits, MAX_BODY_BYTES, RateLimiter};
use super::store::{PinKind, Store, StoreError};
use crate::proto::registry::{
    self, AUTH_SCHEME, Entry, MAX_LIST_ENTRIES, RegistryError, TIME_HEADER, verify_delete,
    verify_request,
};

/// A request as the HTTP layer saw it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// Path and query exactly as sent (what the membership signature covers).
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// A response: status, an optional `retry-after` (seconds), and the body (a list for 200, a
/// short text saying what was wrong otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub retry_after: Option<u64>,
    /// `allow` header of a 405.
    pub allow: Option<&'static str>,
    pub body: Vec<u8>,
}

impl Response {
    fn text(status: u16, text: &str) -> Self {
        Self {
            status,
            retry_after: None,
            allow: None,
            body: format!("{text}\n").into_bytes(),
        }
    }

    fn empty(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
            allow: None,
            body: Vec::new(),
        }
    }

    /// Whether the body is a binary list (200) rather than text.
    pub fn is_list(&self) -> bool {
        self.status == 200
    }
}

/// What the operator configured about meshes.
#[derive(Debug, Clone, Default)]
pub struct MeshPolicy {
    /// Accept only registry ids pinned with `--mesh` (no trust on first use).
    pub pinned_only: bool,
}

/// The server's state: the store, the rate limiter and the policy.
pub struct Registry {
    store: Mutex<Store>,
    /// A second connection to the same database for lists (none for an in-memory store).
    reader: Option<Mutex<Store>>,
    limiter: Mutex<RateLimiter>,
    limits: Limits,
    policy: MeshPolicy,
}

/// The routes of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    List { rid: [u8; 8] },
    Slot { rid: [u8; 8], slot: [u8; 32] },
}

/// Parses the path (query ignored): `Ok(None)` for a path outside the API (404).
fn route(path_and_query: &str) -> Result<Option<Route>, &'static str> {
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query, |(p, _)| p);
    let Some(rest) = path.strip_prefix("/v1/meshes/") else {
        return Ok(None);
    };
    let mut parts = rest.split('/');
    let (Some(rid_hex), Some("entries")) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let slot_hex = parts.next();
    if parts.next().is_some() {
        return Ok(None);
    }
    let mut rid = [0u8; 8];
    if rid_hex.len() != 16 || hex::decode_to_slice(rid_hex, &mut rid).is_err() {
        return Err("registry id is not 16 hex digits");
    }
    match slot_hex {
        None => Ok(Some(Route::List { rid })),
        Some(s) => {
            let mut slot = [0u8; 32];
            if s.len() != 64 || hex::decode_to_slice(s, &mut slot).is_err() {
                return Err("slot is not 64 hex digits");
            }
            Ok(Some(Route::Slot { rid, slot }))
        }
    }
}

fn short(bytes: &[u8]) -> String {
    hex::encode(&bytes[..bytes.len().min(4)])
}

impl Registry {
    pub fn new(store: Store, limits: Limits, policy: MeshPolicy) -> Self {
        Self {
            limiter: Mutex::new(RateLimiter::new(&limits)),
            store: Mutex::new(store),
            reader: None,
            limits,
            policy,
        }
    }

    /// Serves lists from `reader`, a second connection to the store's database file.
    pub fn with_reader(mut self, reader: Store) -> Self {
        self.reader = Some(Mutex::new(reader));
        self
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves SQLite consistent (each write is a transaction).
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Pins the operator's `--mesh` verifiers (at start).
    pub fn pin_operator_meshes(
        &self,
        meshes: &[([u8; 8], [u8; 32])],
        now_secs: u64,
    ) -> Result<(), StoreError> {
        let mut store = self.store();
        store.demote_operator_pins()?;
        for (rid, verifier) in meshes {
            if store.set_pin(rid, verifier, PinKind::Operator, now_secs)? {
                tracing::info!(registry_id = %hex::encode(rid), "verifier pinned by the operator (entries under another verifier dropped)");
            }
        }
        Ok(())
    }

    /// Drops expired entries and idle TOFU pins.
    pub fn sweep(&self, now_secs: u64) -> Result<(usize, usize), StoreError> {
        self.store().sweep(now_secs)
    }

    /// Client addresses the rate limiter tracks (and forgets the refilled ones).
    pub fn forget_idle_clients(&self, now_ms: u64) -> usize {
        let mut limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        limiter.forget_full(now_ms);
        limiter.tracked()
    }

    /// The checks made before the body is read: the client's rate (429) and the declared
    /// `content-length` (413).
    pub fn admit(&self, headers: &HeaderMap, peer: IpAddr, now_ms: u64) -> Result<(), Response> {
        let limited = self
            .limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(peer, now_ms);
        if let Err(secs) = limited {
            tracing::debug!(%peer, "rate-limited");
            let mut r = Response::text(429, "too many requests");
            r.retry_after = Some(secs);
            return Err(r);
        }
        if let Some(len) = headers.get(http::header::CONTENT_LENGTH) {
            let len = len.to_str().ok().and_then(|s| s.parse::<u64>().ok());
            match len {
                Some(n) if n <= MAX_BODY_BYTES as u64 => {}
                Some(_) => return Err(too_large()),
                None => return Err(Response::text(400, "content-length is not a number")),
            }
        }
        Ok(())
    }

    /// Admits and serves one request (what the fuzz target and the tests call).
    pub fn handle(&self, req: &Request<'_>, peer: IpAddr, now_ms: u64) -> Response {
        if let Err(r) = self.admit(req.headers, peer, now_ms) {
            return r;
        }
        self.serve(req, now_ms)
    }

    /// Serves an admitted request whose body has been read (at most [`MAX_BODY_BYTES`]).
    pub fn serve(&self, req: &Request<'_>, now_ms: u64) -> Response {
        match self.serve_inner(req, now_ms / 1000) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                Response::text(500, "storage error")
            }
        }
    }

    fn serve_inner(&self, req: &Request<'_>, now_secs: u64) -> Result<Response, StoreError> {
        if req.body.len() > MAX_BODY_BYTES {
            return Ok(too_large());
        }
        let route = match route(req.path_and_query) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(Response::text(404, "no such resource")),
            Err(why) => return Ok(Response::text(400, why)),
        };
        let allowed = matches!(
            (route, req.method),
            (Route::List { .. }, "GET") | (Route::Slot { .. }, "PUT" | "DELETE")
        );
        if !allowed {
            let mut r = Response::text(405, "method not allowed");
            r.allow = Some(match route {
                Route::List { .. } => "GET",
                Route::Slot { .. } => "PUT, DELETE",
            });
            return Ok(r);
        }
        let verifier = match self.authenticate(req, now_secs) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!("refused: {e}");
                return Ok(Response::text(401, &e));
            }
        };
        let rid = match route {
            Route::List { rid } | Route::Slot { rid, .. } => rid,
        };
        // Lists read on their own connection (WAL: readers never wait for the writer).
        let mut store = match (route, &self.reader) {
            (Route::List { .. }, Some(reader)) => reader.lock().unwrap_or_else(|e| e.into_inner()),
            _ => self.store(),
        };
        let pinned = store.pin(&rid)?;
        match pinned {
            Some((v, kind))
                if v == verifier && self.policy.pinned_only && kind != PinKind::Operator =>
            {
                return Ok(not_pinned(&rid));
            }
            Some((v, _)) if v == verifier => {}
            Some(_) => {
                tracing::info!(registry_id = %hex::encode(rid), verifier = %short(&verifier), "refused: not the verifier pinned for this registry id");
                return Ok(Response::text(
                    403,
                    "this registry id is pinned to another membership verifier",
                ));
            }
            None if self.policy.pinned_only => return Ok(not_pinned(&rid)),
            None => {}
        }
        let is_pinned = pinned.is_some();
        Ok(match route {
            Route::List { rid } => {
                let entries = store.list(&rid, now_secs, MAX_LIST_ENTRIES)?;
                let mut body = Vec::with_capacity(2 + entries.iter().map(Vec::len).sum::<usize>());
                body.extend_from_slice(&(entries.len() as u16).to_be_bytes());
                for e in &entries {
                    body.extend_from_slice(e);
                }
                tracing::debug!(registry_id = %hex::encode(rid), entries = entries.len(), "listed");
                Response {
                    status: 200,
                    retry_after: None,
                    allow: None,
                    body,
                }
            }
            Route::Slot { rid, slot } if req.method == "PUT" => self.put(
                &mut store, rid, slot, verifier, is_pinned, req.body, now_secs,
            )?,
            Route::Slot { rid, slot } => {
                delete(&mut store, rid, slot, is_pinned, req.body, now_secs)?
            }
        })
    }

    fn authenticate(&self, req: &Request<'_>, now_secs: u64) -> Result<[u8; 32], String> {
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        let Some(auth) = header(http::header::AUTHORIZATION.as_str()) else {
            return Err(format!(
                "no authorization header: sign requests with the mesh's membership key ({AUTH_SCHEME})"
            ));
        };
        let Some(time) = header(TIME_HEADER).and_then(|t| t.parse::<u64>().ok()) else {
            return Err(format!(
                "no {TIME_HEADER} header with the request's unix time in seconds"
            ));
        };
        verify_request(
            auth,
            req.method,
            req.path_and_query,
            time,
            now_secs,
            req.body,
        )
        .map_err(|e| e.to_string())
    }

    #[allow(clippy::too_many_arguments)]
    fn put(
        &self,
        store: &mut Store,
        rid: [u8; 8],
        slot: [u8; 32],
        verifier: [u8; 32],
        is_pinned: bool,
        body: &[u8],
        now_secs: u64,
    ) -> Result<Response, StoreError> {
        let entry = match Entry::decode(body) {
            Ok(e) => e,
            Err(e) => return Ok(Response::text(400, &e.to_string())),
        };
        if entry.slot != slot {
            return Ok(Response::text(
                403,
                "the entry is for another slot than the one in the path",
            ));
        }
        if let Err(e) = entry.verify(&rid) {
            tracing::info!(registry_id = %hex::encode(rid), slot = %short(&slot), "refused entry: {e}");
            return Ok(Response::text(403, &e.to_string()));
        }
        let held = store.held(&rid, &slot, now_secs)?;
        if let Some(seq) = held {
            if entry.seq <= seq {
                return Ok(Response::text(
                    409,
                    "seq is not newer than the held entry's",
                ));
            }
        } else if store.live_count(&rid, now_secs)? >= MAX_LIST_ENTRIES as u64 {
            tracing::warn!(registry_id = %hex::encode(rid), "refused entry: registry id full");
            return Ok(Response::text(
                507,
                "this registry id holds the most entries it may",
            ));
        }
        if !is_pinned {
            if store.mesh_count()? >= self.limits.max_meshes {
                tracing::warn!(registry_id = %hex::encode(rid), "refused new registry id: server full (--max-meshes)");
                return Ok(Response::text(
                    507,
                    "this server holds the most registry ids it may",
                ));
            }
            store.set_pin(&rid, &verifier, PinKind::Tofu, now_secs)?;
            tracing::info!(registry_id = %hex::encode(rid), verifier = %short(&verifier), "new registry id: verifier pinned on first write");
        }
        let expires = now_secs.saturating_add(u64::from(entry.ttl_secs));
        store.put(&rid, &slot, entry.seq, expires, &entry.encode(), now_secs)?;
        tracing::info!(registry_id = %hex::encode(rid), slot = %short(&slot), ttl = entry.ttl_secs, replaced = held.is_some(), "stored entry");
        Ok(Response::empty(204))
    }
}

fn delete(
    store: &mut Store,
    rid: [u8; 8],
    slot: [u8; 32],
    is_pinned: bool,
    body: &[u8],
    now_secs: u64,
) -> Result<Response, StoreError> {
    let seq = match verify_delete(&rid, &slot, body) {
        Ok(seq) => seq,
        Err(e @ RegistryError::DeleteSize(_)) => return Ok(Response::text(400, &e.to_string())),
        Err(e) => {
            tracing::info!(registry_id = %hex::encode(rid), slot = %short(&slot), "refused delete: {e}");
            return Ok(Response::text(403, &e.to_string()));
        }
    };
    let held = if is_pinned {
        store.held(&rid, &slot, now_secs)?
    } else {
        None
    };
    match held {
        None => Ok(Response::text(404, "no live entry in this slot")),
        Some(h) if seq < h => Ok(Response::text(
            409,
            "the delete proof is older than the held entry",
        )),
        Some(_) => {
            store.delete(&rid, &slot)?;
            tracing::info!(registry_id = %hex::encode(rid), slot = %short(&slot), "deleted entry");
            Ok(Response::empty(204))
        }
    }
}

fn too_large() -> Response {
    Response::text(
        413,
        &format!("request body over {} bytes", registry::MAX_ENTRY_BYTES),
    )
}

fn not_pinned(rid: &[u8; 8]) -> Response {
    tracing::info!(registry_id = %hex::encode(rid), "refused: registry id not pinned by the operator (--pinned-only)");
    Response::text(
        403,
        "this server serves only the registry ids its operator pinned",
    )
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
