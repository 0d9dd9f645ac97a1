#!/usr/bin/env python3
"""A stand-in for the subset of the GitHub REST API that wgmesh's registry backend uses
(src/discovery/registry/github.rs), for netns-tests/src/bin/registry-tests.rs. Python 3
standard library only; one repository, one token, state in memory.

Implemented (paths under the one repository OWNER/REPO given with --repo):
  GET    /repos/O/R/issues?state=open|closed|all&per_page=N&page=N   (issues and pull
         requests, oldest first; a pull request carries a "pull_request" key)
  POST   /repos/O/R/issues                 {"title", "body"}  -> 201 issue
  PATCH  /repos/O/R/issues/N               {"state": "open"|"closed", "title", "body"}
  GET    /repos/O/R/issues/N/comments?per_page=N&page=N  (404 when the issue is unknown)
  POST   /repos/O/R/issues/N/comments      {"body"}  -> 201 comment
  PATCH  /repos/O/R/issues/comments/ID     {"body"}  -> 200 comment, 404 unknown
  DELETE /repos/O/R/issues/comments/ID     -> 204, 404 unknown
As GitHub does: `Authorization: Bearer TOKEN` (or `token TOKEN`) must match --token, else
401 {"message": "Bad credentials"}; pages are capped at --max-per-page (GitHub: 100) and a
`Link` header names the `next` page; comment bodies over 65536 characters are 422; every
answer carries x-ratelimit-limit/-remaining/-used/-reset (the limit is --limit requests per
hour).

Test controls (no token needed), not GitHub's:
  GET  /_standin/state        -> {"issues": [{number, title, state, pull_request,
                                   comments: [{id, body}]}], "requests": N, "limited": N}
  POST /_standin/rate-limit   {"on": true, "retry_after": S, "kind": "primary"|"secondary"}
       while on, every API request is refused: primary = 403 with x-ratelimit-remaining 0
       and x-ratelimit-reset S seconds ahead; secondary = 429 with retry-after S.

--noise adds an unrelated issue, a pull request titled like a mesh issue, and a human comment
that a client must ignore.
"""

import argparse
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 1 << 20
MAX_COMMENT = 65536


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.args = args
        self.issues = []  # dicts: number, title, body, state, pull_request, comments
        self.next_number = 1
        self.next_comment = 1000
        self.requests = 0
        self.limited = 0
        self.window_start = time.time()
        self.used = 0
        self.rate = None  # (kind, until)

    def issue(self, number):
        return next((i for i in self.issues if i["number"] == number), None)

    def comment(self, cid):
        for i in self.issues:
            for c in i["comments"]:
                if c["id"] == cid:
                    return i, c
        return None, None

    def add_issue(self, title, body, pull_request=False):
        issue = {
            "number": self.next_number,
            "title": title,
            "body": body,
            "state": "open",
            "pull_request": pull_request,
            "comments": [],
        }
        self.next_number += 1
        self.issues.append(issue)
        return issue

    def add_comment(self, issue, body):
        c = {"id": self.next_comment, "body": body}
        self.next_comment += 1
        issue["comments"].append(c)
        return c


def issue_json(s, i):
    base = f"http://{s.args.listen}/repos/{s.args.repo}"
    out = {
        "id": 10_000 + i["number"],
        "number": i["number"],
        "title": i["title"],
        "body": i["body"],
        "state": i["state"],
        "comments": len(i["comments"]),
        "user": {"login": "wgmesh-bot"},
        "url": f"{base}/issues/{i['number']}",
    }
    if i["pull_request"]:
        out["pull_request"] = {"url": f"{base}/pulls/{i['number']}"}
    return out


def comment_json(s, c):
    return {
        "id": c["id"],
        "body": c["body"],
        "user": {"login": "wgmesh-bot"},
        "url": f"http://{s.args.listen}/repos/{s.args.repo}/issues/comments/{c['id']}",
    }


def make_handler(s):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            if s.args.verbose:
                super().log_message(fmt, *a)

        def send(self, status, obj=None, headers=None):
            data = b"" if obj is None else json.dumps(obj).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if obj is not None:
                self.send_header("content-type", "application/json; charset=utf-8")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self):
            n = int(self.headers.get("content-length") or 0)
            if n > MAX_BODY:
                return None
            raw = self.rfile.read(n) if n else b""
            try:
                return json.loads(raw) if raw else {}
            except ValueError:
                return None

        def rate_headers(self):
            now = time.time()
            if now - s.window_start >= 3600:
                s.window_start, s.used = now, 0
            s.used += 1
            remaining = max(0, s.args.limit - s.used)
            return {
                "x-ratelimit-limit": str(s.args.limit),
                "x-ratelimit-remaining": str(remaining),
                "x-ratelimit-used": str(s.used),
                "x-ratelimit-reset": str(int(s.window_start + 3600)),
            }

        def page(self, items, query, path):
            per_page = min(int(query.get("per_page", ["30"])[0]), s.args.max_per_page, 100)
            page = max(1, int(query.get("page", ["1"])[0]))
            chunk = items[(page - 1) * per_page : page * per_page]
            headers = {}
            last = max(1, (len(items) + per_page - 1) // per_page)
            links = []
            if page < last:
                links.append(f'<http://{s.args.listen}{path}?per_page={per_page}&page={page + 1}>; rel="next"')
                links.append(f'<http://{s.args.listen}{path}?per_page={per_page}&page={last}>; rel="last"')
            if links:
                headers["link"] = ", ".join(links)
            return chunk, headers

        def handle_any(self, method):
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            path = url.path
            with s.lock:
                if path == "/_standin/state" and method == "GET":
                    return self.send(200, {
                        "issues": [
                            {**{k: v for k, v in i.items() if k != "comments"},
                             "comments": [dict(c) for c in i["comments"]]}
                            for i in s.issues
                        ],
                        "requests": s.requests,
                        "limited": s.limited,
                    })
                if path == "/_standin/rate-limit" and method == "POST":
                    b = self.body() or {}
                    if b.get("on"):
                        s.rate = (b.get("kind", "primary"), time.time() + int(b.get("retry_after", 60)))
                    else:
                        s.rate = None
                    return self.send(204)
                s.requests += 1
                auth = self.headers.get("authorization", "")
                token = auth.split(" ", 1)[1].strip() if " " in auth else ""
                if auth.split(" ", 1)[0].lower() not in ("bearer", "token") or token != s.args.token:
                    return self.send(401, {"message": "Bad credentials"})
                if not self.headers.get("user-agent"):
                    return self.send(403, {"message": "Request forbidden: a User-Agent header is required"})
                headers = self.rate_headers()
                if s.rate is not None:
                    kind, until = s.rate
                    wait = max(1, int(until - time.time()))
                    s.limited += 1
                    if kind == "secondary":
                        headers["retry-after"] = str(wait)
                        return self.send(429, {"message": "You have exceeded a secondary rate limit."}, headers)
                    headers["x-ratelimit-remaining"] = "0"
                    headers["x-ratelimit-reset"] = str(int(until))
                    return self.send(403, {"message": "API rate limit exceeded"}, headers)
                prefix = f"/repos/{s.args.repo}"
                if not path.startswith(prefix + "/"):
                    return self.send(404, {"message": "Not Found"}, headers)
                rest = path[len(prefix):]
                if rest == "/issues" and method == "GET":
                    want = query.get("state", ["open"])[0]
                    items = [i for i in s.issues if want == "all" or i["state"] == want]
                    items.sort(key=lambda i: i["number"])
                    chunk, h = self.page(items, query, path)
                    return self.send(200, [issue_json(s, i) for i in chunk], {**headers, **h})
                if rest == "/issues" and method == "POST":
                    b = self.body()
                    if not b or not isinstance(b.get("title"), str) or not b["title"]:
                        return self.send(422, {"message": "Validation Failed"}, headers)
                    i = s.add_issue(b["title"], b.get("body") or "")
                    return self.send(201, issue_json(s, i), headers)
                m = re.fullmatch(r"/issues/(\d+)", rest)
                if m and method == "PATCH":
                    i = s.issue(int(m.group(1)))
                    b = self.body()
                    if i is None:
                        return self.send(404, {"message": "Not Found"}, headers)
                    if b is None or b.get("state", "open") not in ("open", "closed"):
                        return self.send(422, {"message": "Validation Failed"}, headers)
                    for k in ("state", "title", "body"):
                        if k in b:
                            i[k] = b[k]
                    return self.send(200, issue_json(s, i), headers)
                m = re.fullmatch(r"/issues/(\d+)/comments", rest)
                if m:
                    i = s.issue(int(m.group(1)))
                    if i is None:
                        return self.send(404, {"message": "Not Found"}, headers)
                    if method == "GET":
                        chunk, h = self.page(i["comments"], query, path)
                        return self.send(200, [comment_json(s, c) for c in chunk], {**headers, **h})
                    if method == "POST":
                        b = self.body()
                        if not b or not isinstance(b.get("body"), str) or len(b["body"]) > MAX_COMMENT:
                            return self.send(422, {"message": "Validation Failed"}, headers)
                        c = s.add_comment(i, b["body"])
                        return self.send(201, comment_json(s, c), headers)
                m = re.fullmatch(r"/issues/comments/(\d+)", rest)
                if m:
                    i, c = s.comment(int(m.group(1)))
                    if c is None:
                        return self.send(404, {"message": "Not Found"}, headers)
                    if method == "PATCH":
                        b = self.body()
                        if not b or not isinstance(b.get("body"), str) or len(b["body"]) > MAX_COMMENT:
                            return self.send(422, {"message": "Validation Failed"}, headers)
                        c["body"] = b["body"]
                        return self.send(200, comment_json(s, c), headers)
                    if method == "DELETE":
                        i["comments"].remove(c)
                        return self.send(204, None, headers)
                return self.send(404, {"message": "Not Found"}, headers)

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def do_PATCH(self):
            self.handle_any("PATCH")

        def do_DELETE(self):
            self.handle_any("DELETE")

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", required=True, help="HOST:PORT")
    p.add_argument("--repo", required=True, help="OWNER/REPO")
    p.add_argument("--token", required=True)
    p.add_argument("--max-per-page", type=int, default=100)
    p.add_argument("--limit", type=int, default=5000)
    p.add_argument("--noise", action="store_true")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    s = State(args)
    if args.noise:
        s.add_issue("Bug: something unrelated", "not a mesh")
        s.add_comment(s.issues[-1], "a human comment")
        s.add_issue("wgmesh-0000000000000000", "a pull request, never a registry", pull_request=True)
    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), make_handler(s))
    print(f"github stand-in on {args.listen} for {args.repo}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
