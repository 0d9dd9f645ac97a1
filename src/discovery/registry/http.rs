//! The self-hosted registry backend: a `wgmesh registry serve` server over HTTP(S)
//! (PROTOCOL.md §15). Every request carries `x-wgmesh-time` and the membership key's
//! `Authorization`; entries go up with `PUT`, come back with `GET` as `count ‖ entry*`, and a
//! node's own entry is removed with `DELETE` and a delete proof.

use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use futures_util::future::BoxFuture;
use reqwest::{Method, StatusCode};

use super::client::{describe, read_limited, retry_after, snippet};
use super::{DeleteRequest, Registry, RegistryClientError};
use crate::proto::MeshKeys;
use crate::proto::registry::{
    Entry, MAX_ENTRY_BYTES, MAX_LIST_ENTRIES, TIME_HEADER, authorization, decode_list, member_key,
};

/// Largest list response read: the count and 4096 of the largest entries.
const MAX_LIST_BYTES: usize = 2 + MAX_LIST_ENTRIES * MAX_ENTRY_BYTES;
/// Largest error body read (for the message).
const MAX_ERROR_BYTES: usize = 4096;

/// A `wgmesh registry serve` server.
pub struct HttpRegistry {
    http: reqwest::Client,
    /// `scheme://host[:port][/prefix]` without a trailing slash.
    base: String,
    /// The path prefix of `base` ("" or "/prefix").
    prefix: String,
    rid: String,
    member: SigningKey,
}

impl HttpRegistry {
    pub fn new(http: reqwest::Client, base: &str, keys: &MeshKeys) -> Self {
        let base = base.trim_end_matches('/').to_string();
        let prefix = reqwest::Url::parse(&base)
            .map(|u| u.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        Self {
            http,
            base,
            prefix,
            rid: keys.registry_id_hex(),
            member: member_key(keys),
        }
    }

    fn entries_path(&self) -> String {
        format!("{}/v1/meshes/{}/entries", self.prefix, self.rid)
    }

    /// Sends one signed request; returns the response when its status is a success or one
    /// of `accept`.
    async fn send(
        &self,
        method: Method,
        path: String,
        body: Vec<u8>,
        what: &'static str,
        accept: &[StatusCode],
    ) -> Result<reqwest::Response, RegistryClientError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let auth = authorization(&self.member, method.as_str(), &path, now, &body);
        let url = format!(
            "{}{}",
            self.base,
            path.strip_prefix(&self.prefix).unwrap_or(&path)
        );
        let mut req = self
            .http
            .request(method, url)
            .header(TIME_HEADER, now.to_string())
            .header(reqwest::header::AUTHORIZATION, auth);
        if !body.is_empty() {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| RegistryClientError::Unreachable(describe(&e)))?;
        let status = resp.status();
        if status.is_success() || accept.contains(&status) {
            return Ok(resp);
        }
        let wait = retry_after(resp.headers());
        let text = snippet(
            &read_limited(resp, MAX_ERROR_BYTES)
                .await
                .unwrap_or_default(),
        );
        Err(match status {
            StatusCode::UNAUTHORIZED => RegistryClientError::Unauthorized(format!(
                "{text}; check that this clock is right (requests are signed with the time)"
            )),
            StatusCode::FORBIDDEN => RegistryClientError::Forbidden(format!(
                "{text}; the server pins another mesh's verifier for this registry id (compare `wgmesh registry verifier` with its --mesh)"
            )),
            StatusCode::TOO_MANY_REQUESTS => RegistryClientError::RateLimited { retry_after: wait },
            StatusCode::CONFLICT => RegistryClientError::Conflict,
            _ => RegistryClientError::Status {
                status: status.as_u16(),
                what,
                body: text,
            },
        })
    }
}

impl Registry for HttpRegistry {
    fn publish<'a>(&'a self, entry: &'a Entry) -> BoxFuture<'a, Result<(), RegistryClientError>> {
        Box::pin(async move {
            let path = format!("{}/{}", self.entries_path(), hex::encode(entry.slot));
            self.send(Method::PUT, path, entry.encode(), "a publish", &[])
                .await?;
            Ok(())
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Entry>, RegistryClientError>> {
        Box::pin(async move {
            let resp = self
                .send(Method::GET, self.entries_path(), Vec::new(), "a list", &[])
                .await?;
            let body = read_limited(resp, MAX_LIST_BYTES).await?;
            Ok(decode_list(&body)?)
        })
    }

    fn delete<'a>(
        &'a self,
        request: &'a DeleteRequest,
    ) -> BoxFuture<'a, Result<(), RegistryClientError>> {
        Box::pin(async move {
            let path = format!("{}/{}", self.entries_path(), hex::encode(request.slot));
            self.send(
                Method::DELETE,
                path,
                request.proof.to_vec(),
                "a delete",
                &[StatusCode::NOT_FOUND],
            )
            .await?;
            Ok(())
        })
    }
}
