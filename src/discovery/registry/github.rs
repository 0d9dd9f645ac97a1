//! The GitHub Issues registry backend (`--registry github:OWNER/REPO`, PROTOCOL.md §15): one
//! issue per mesh titled `wgmesh-<registry-id hex>`, one comment per node whose body is
//! `wgmesh-entry v1\n` and the entry in standard base64.
//!
//! REST calls used (and nothing else; the netns stand-in implements exactly these):
//! - `GET  /repos/O/R/issues?state=open&sort=created&direction=asc&per_page=100&page=N`
//!   (find the issue; pull requests are skipped; the lowest number wins when two nodes
//!   created one at the same moment)
//! - `POST /repos/O/R/issues` (create it when absent), `PATCH /repos/O/R/issues/N`
//!   (close a duplicate this node created in such a race)
//! - `GET  /repos/O/R/issues/N/comments?per_page=100&page=N` (every entry, pages followed
//!   while the `Link` header names a `next` one)
//! - `POST /repos/O/R/issues/N/comments`, `PATCH /repos/O/R/issues/comments/ID`,
//!   `DELETE /repos/O/R/issues/comments/ID` (this node's own comment, found by its slot)
//!
//! Rate limits: `x-ratelimit-remaining: 0` holds every request until `x-ratelimit-reset`;
//! 403/429 answers with `retry-after`, or with the limit exhausted, become
//! [`RegistryClientError::RateLimited`] (the schedule backs off at least that long).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::future::BoxFuture;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use super::client::{describe, read_limited, retry_after, snippet};
use super::{DeleteRequest, Registry, RegistryAccess, RegistryClientError};
use crate::proto::registry::{Entry, MAX_ENTRY_BYTES};

/// The public API (`$WGMESH_GITHUB_API` overrides it, e.g. for a GitHub Enterprise server).
pub const DEFAULT_API: &str = "https://api.github.com";
/// First line of every entry comment.
pub const COMMENT_PREFIX: &str = "wgmesh-entry v1\n";
/// Items per page asked for.
const PER_PAGE: usize = 100;
/// Most comment pages read (10 000 nodes).
const MAX_COMMENT_PAGES: usize = 100;
/// Most issue pages searched for the mesh's issue.
const MAX_ISSUE_PAGES: usize = 20;
/// Largest page read (100 comments with their metadata are ~300 KB).
const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;
/// Largest token file read.
const MAX_TOKEN_BYTES: u64 = 4096;
/// Wait after a 403/429 that says neither `retry-after` nor an exhausted limit (GitHub's
/// advice for secondary limits).
const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// The GitHub token: `--registry-token-file`, else the systemd credential `github-token`,
/// else `$GITHUB_TOKEN`.
pub fn token(access: &RegistryAccess) -> Result<Zeroizing<String>, RegistryClientError> {
    let from_file = |path: &std::path::Path| -> Result<Zeroizing<String>, RegistryClientError> {
        let err = |reason: String| RegistryClientError::TokenFile {
            path: path.to_path_buf(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if meta.len() > MAX_TOKEN_BYTES {
            return Err(err("larger than 4 KiB: is it a token?".into()));
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?);
        let t = text.trim();
        if t.is_empty() || t.contains(char::is_whitespace) {
            return Err(err("expected one token on one line".into()));
        }
        Ok(Zeroizing::new(t.to_string()))
    };
    if let Some(p) = &access.token_file {
        return from_file(p);
    }
    if let Some(dir) = &access.credentials_dir {
        let p = dir.join("github-token");
        if p.exists() {
            return from_file(&p);
        }
    }
    match &access.env_token {
        Some(t) => Ok(Zeroizing::new(t.trim().to_string())),
        None => Err(RegistryClientError::NoToken),
    }
}

#[derive(Deserialize)]
struct Issue {
    number: u64,
    #[serde(default)]
    title: String,
    #[serde(default)]
    pull_request: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Comment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
}

/// An entry comment's body for `entry`.
pub fn comment_body(entry: &Entry) -> String {
    format!("{COMMENT_PREFIX}{}", B64.encode(entry.encode()))
}

/// The entry in a comment body, if it is one (other comments are ignored).
pub fn parse_comment(body: &str) -> Option<Entry> {
    let b64 = body.strip_prefix(COMMENT_PREFIX)?.trim();
    if b64.len() > MAX_ENTRY_BYTES.div_ceil(3) * 4 {
        return None;
    }
    Entry::decode(&B64.decode(b64).ok()?).ok()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What one answer says about GitHub's rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateVerdict {
    /// No request before this unix second (the limit is used up, or the answer said wait).
    pub hold_until: Option<u64>,
    /// The answer was a rate-limit refusal; wait this long.
    pub limited: Option<Duration>,
}

/// Reads an answer's `status`, `x-ratelimit-remaining`, `x-ratelimit-reset` (unix seconds),
/// `retry-after` and body text at unix second `now`: an exhausted limit holds every request
/// until the reset (at most an hour, at least a second); a 403/429 refusal with `retry-after`,
/// an exhausted limit or "rate limit" in its message is a rate limit (GitHub's advice without
/// a header: wait a minute).
pub fn rate_verdict(
    status: u16,
    remaining: Option<u64>,
    reset: Option<u64>,
    retry_after: Option<Duration>,
    body: &str,
    now: u64,
) -> RateVerdict {
    let exhausted_until = match (remaining, reset) {
        (Some(0), Some(r)) => Some(r.clamp(now + 1, now + 3600)),
        (Some(0), None) => Some(now + SECONDARY_LIMIT_WAIT.as_secs()),
        _ => None,
    };
    let refused = matches!(status, 403 | 429);
    let limited = if !refused {
        None
    } else if let Some(w) = retry_after {
        Some(w)
    } else if let Some(u) = exhausted_until {
        Some(Duration::from_secs(u - now))
    } else if status == 429 || body.to_ascii_lowercase().contains("rate limit") {
        Some(SECONDARY_LIMIT_WAIT)
    } else {
        None
    };
    let hold_until = match (exhausted_until, limited) {
        (e, Some(w)) => Some(e.unwrap_or(0).max(now + w.as_secs())),
        (e, None) => e,
    };
    RateVerdict {
        hold_until,
        limited,
    }
}

/// What the backend remembers between calls.
#[derive(Default)]
struct State {
    issue: Option<u64>,
    own_comment: Option<u64>,
    /// Unix seconds before which no request is sent (the limit is exhausted).
    hold_until: Option<u64>,
}

/// One repository's issue as a registry.
pub struct GitHubRegistry {
    http: reqwest::Client,
    api: String,
    repo_path: String,
    title: String,
    token: Zeroizing<String>,
    state: Mutex<State>,
}

impl GitHubRegistry {
    pub fn new(
        http: reqwest::Client,
        api: &str,
        owner: &str,
        repo: &str,
        token: Zeroizing<String>,
        registry_id: [u8; 8],
    ) -> Self {
        Self {
            http,
            api: api.trim_end_matches('/').to_string(),
            repo_path: format!("/repos/{owner}/{repo}"),
            title: format!("wgmesh-{}", hex::encode(registry_id)),
            token,
            state: Mutex::new(State::default()),
        }
    }

    /// One API call; `accept` statuses are returned like successes.
    async fn call(
        &self,
        state: &mut State,
        method: Method,
        path: &str,
        json: Option<serde_json::Value>,
        what: &'static str,
        accept: &[StatusCode],
    ) -> Result<reqwest::Response, RegistryClientError> {
        let now = unix_now();
        if let Some(until) = state.hold_until {
            if now < until {
                return Err(RegistryClientError::RateLimited {
                    retry_after: Some(Duration::from_secs(until - now)),
                });
            }
            state.hold_until = None;
        }
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(self.token.as_str())
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28");
        if let Some(j) = json {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(j.to_string());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| RegistryClientError::Unreachable(describe(&e)))?;
        let header_u64 = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let remaining = header_u64("x-ratelimit-remaining");
        let reset = header_u64("x-ratelimit-reset");
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let ok = status.is_success() || accept.contains(&status);
        if ok {
            let v = rate_verdict(status.as_u16(), remaining, reset, wait, "", now);
            if v.hold_until.is_some() {
                state.hold_until = v.hold_until;
            }
            return Ok(resp);
        }
        let text = snippet(&read_limited(resp, 4096).await.unwrap_or_default());
        let v = rate_verdict(status.as_u16(), remaining, reset, wait, &text, now);
        if v.hold_until.is_some() {
            state.hold_until = v.hold_until;
        }
        Err(match status {
            _ if v.limited.is_some() => RegistryClientError::RateLimited {
                retry_after: v.limited,
            },
            StatusCode::UNAUTHORIZED => RegistryClientError::Unauthorized(format!(
                "{text}; the GitHub token is wrong or expired"
            )),
            StatusCode::FORBIDDEN => RegistryClientError::Forbidden(format!(
                "{text}; the GitHub token needs read and write access to issues of {}",
                self.repo_path.trim_start_matches("/repos/")
            )),
            _ => RegistryClientError::Status {
                status: status.as_u16(),
                what,
                body: text,
            },
        })
    }

    async fn json<T: for<'de> Deserialize<'de>>(
        resp: reqwest::Response,
    ) -> Result<(T, bool), RegistryClientError> {
        let has_next = resp
            .headers()
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("rel=\"next\""));
        let body = read_limited(resp, MAX_PAGE_BYTES).await?;
        let value = serde_json::from_slice(&body)
            .map_err(|e| RegistryClientError::Malformed(format!("GitHub JSON: {e}")))?;
        Ok((value, has_next))
    }

    /// The lowest-numbered open issue titled for this mesh.
    async fn find_issue(&self, state: &mut State) -> Result<Option<u64>, RegistryClientError> {
        let mut best: Option<u64> = None;
        for page in 1..=MAX_ISSUE_PAGES {
            let path = format!(
                "{}/issues?state=open&sort=created&direction=asc&per_page={PER_PAGE}&page={page}",
                self.repo_path
            );
            let resp = self
                .call(state, Method::GET, &path, None, "listing issues", &[])
                .await?;
            let (issues, has_next): (Vec<Issue>, bool) = Self::json(resp).await?;
            let n = issues.len();
            for i in issues {
                if i.title == self.title && i.pull_request.is_none() {
                    best = Some(best.map_or(i.number, |b| b.min(i.number)));
                }
            }
            if !has_next && n < PER_PAGE {
                break;
            }
        }
        Ok(best)
    }

    /// The mesh's issue, created when absent.
    async fn issue(&self, state: &mut State) -> Result<u64, RegistryClientError> {
        if let Some(n) = state.issue {
            return Ok(n);
        }
        if let Some(n) = self.find_issue(state).await? {
            state.issue = Some(n);
            return Ok(n);
        }
        let body = serde_json::json!({
            "title": self.title,
            "body": "wgmesh registry: each comment is one node's sealed entry (PROTOCOL.md §15). \
                     The entries are encrypted; do not edit them by hand.",
        });
        let resp = self
            .call(
                state,
                Method::POST,
                &format!("{}/issues", self.repo_path),
                Some(body),
                "creating the issue",
                &[],
            )
            .await?;
        let (created, _): (Issue, bool) = Self::json(resp).await?;
        // Two nodes may have created one at the same moment: everyone uses the lowest.
        let lowest = self
            .find_issue(state)
            .await?
            .map_or(created.number, |n| n.min(created.number));
        if lowest != created.number {
            tracing::info!(
                ours = created.number,
                kept = lowest,
                "another node created the registry issue at the same time: closing ours"
            );
            let _ = self
                .call(
                    state,
                    Method::PATCH,
                    &format!("{}/issues/{}", self.repo_path, created.number),
                    Some(serde_json::json!({ "state": "closed" })),
                    "closing a duplicate issue",
                    &[],
                )
                .await;
        } else {
            tracing::info!(issue = lowest, title = %self.title, "created the registry issue");
        }
        state.issue = Some(lowest);
        Ok(lowest)
    }

    /// Every entry comment of the issue: (comment id, entry).
    async fn comments(
        &self,
        state: &mut State,
        issue: u64,
    ) -> Result<Vec<(u64, Entry)>, RegistryClientError> {
        let mut out = Vec::new();
        for page in 1..=MAX_COMMENT_PAGES {
            let path = format!(
                "{}/issues/{issue}/comments?per_page={PER_PAGE}&page={page}",
                self.repo_path
            );
            let resp = self
                .call(
                    state,
                    Method::GET,
                    &path,
                    None,
                    "listing comments",
                    &[StatusCode::NOT_FOUND],
                )
                .await?;
            if resp.status() == StatusCode::NOT_FOUND {
                // The issue is gone (deleted or transferred): find or create it next time.
                state.issue = None;
                state.own_comment = None;
                return Err(RegistryClientError::Status {
                    status: 404,
                    what: "listing comments",
                    body: format!("issue {issue} is gone; it will be found or created again"),
                });
            }
            let (comments, has_next): (Vec<Comment>, bool) = Self::json(resp).await?;
            let n = comments.len();
            out.extend(
                comments
                    .into_iter()
                    .filter_map(|c| Some((c.id, parse_comment(c.body.as_deref()?)?))),
            );
            if !has_next || n == 0 {
                break;
            }
        }
        Ok(out)
    }

    /// The ids of comments holding an entry for `slot`, oldest first.
    async fn own_comments(
        &self,
        state: &mut State,
        issue: u64,
        slot: &[u8; 32],
    ) -> Result<Vec<u64>, RegistryClientError> {
        let mut ids: Vec<u64> = self
            .comments(state, issue)
            .await?
            .into_iter()
            .filter(|(_, e)| &e.slot == slot)
            .map(|(id, _)| id)
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    async fn delete_comment(&self, state: &mut State, id: u64) -> Result<(), RegistryClientError> {
        self.call(
            state,
            Method::DELETE,
            &format!("{}/issues/comments/{id}", self.repo_path),
            None,
            "deleting a comment",
            &[StatusCode::NOT_FOUND],
        )
        .await?;
        Ok(())
    }

    async fn publish_inner(&self, entry: &Entry) -> Result<(), RegistryClientError> {
        let mut state = self.state.lock().await;
        let issue = self.issue(&mut state).await?;
        let body = serde_json::json!({ "body": comment_body(entry) });
        if state.own_comment.is_none() {
            let mine = self.own_comments(&mut state, issue, &entry.slot).await?;
            state.own_comment = mine.first().copied();
            // Leftovers (a crash between create and remember): one comment per node.
            for id in mine.iter().skip(1) {
                let _ = self.delete_comment(&mut state, *id).await;
            }
        }
        if let Some(id) = state.own_comment {
            let resp = self
                .call(
                    &mut state,
                    Method::PATCH,
                    &format!("{}/issues/comments/{id}", self.repo_path),
                    Some(body.clone()),
                    "editing this node's comment",
                    &[StatusCode::NOT_FOUND],
                )
                .await?;
            if resp.status() != StatusCode::NOT_FOUND {
                return Ok(());
            }
            // Deleted meanwhile: file a new one.
            state.own_comment = None;
        }
        let resp = self
            .call(
                &mut state,
                Method::POST,
                &format!("{}/issues/{issue}/comments", self.repo_path),
                Some(body),
                "commenting",
                &[],
            )
            .await?;
        let (created, _): (Comment, bool) = Self::json(resp).await?;
        state.own_comment = Some(created.id);
        Ok(())
    }

    async fn list_inner(&self) -> Result<Vec<Entry>, RegistryClientError> {
        let mut state = self.state.lock().await;
        let issue = self.issue(&mut state).await?;
        Ok(self
            .comments(&mut state, issue)
            .await?
            .into_iter()
            .map(|(_, e)| e)
            .collect())
    }

    async fn delete_inner(&self, slot: &[u8; 32]) -> Result<(), RegistryClientError> {
        let mut state = self.state.lock().await;
        let Some(issue) = state.issue else {
            // Never published through this backend: look, but do not create the issue.
            let Some(issue) = self.find_issue(&mut state).await? else {
                return Ok(());
            };
            state.issue = Some(issue);
            return self.delete_all(&mut state, issue, slot).await;
        };
        match state.own_comment.take() {
            Some(id) => self.delete_comment(&mut state, id).await,
            None => self.delete_all(&mut state, issue, slot).await,
        }
    }

    async fn delete_all(
        &self,
        state: &mut State,
        issue: u64,
        slot: &[u8; 32],
    ) -> Result<(), RegistryClientError> {
        for id in self.own_comments(state, issue, slot).await? {
            self.delete_comment(state, id).await?;
        }
        state.own_comment = None;
        Ok(())
    }
}

impl Registry for GitHubRegistry {
    fn publish<'a>(&'a self, entry: &'a Entry) -> BoxFuture<'a, Result<(), RegistryClientError>> {
        Box::pin(self.publish_inner(entry))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Entry>, RegistryClientError>> {
        Box::pin(self.list_inner())
    }

    fn delete<'a>(
        &'a self,
        request: &'a DeleteRequest,
    ) -> BoxFuture<'a, Result<(), RegistryClientError>> {
        Box::pin(self.delete_inner(&request.slot))
    }
}
