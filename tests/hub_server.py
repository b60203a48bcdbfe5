"""A small Hugging Face Hub-compatible HTTP server for the tests (no maintained package serves the Hub's API: PyPI's
hf-local-hub ships no server in its wheel).

It implements the part of the Hub's HTTP API that the pinned `huggingface_hub` client, `datasets` and diffusers call
(read from their code, with HF_HUB_DISABLE_XET=1 so files move as plain HTTP and Git LFS):

| route | client calls |
|---|---|
| GET /api/whoami-v2 | HfApi.whoami |
| POST /api/repos/create | HfApi.create_repo (409 when it exists: exist_ok) |
| POST /api/validate-yaml | upload_folder / create_commit of a README.md (its YAML header checked first) |
| POST /api/{type}s/{id}/branch/{branch} | HfApi.create_branch |
| GET /api/{type}s/{id}[/revision/{rev}] | repo_info, model_info, dataset_info, repo_exists, snapshot_download |
| GET /api/{type}s/{id}/refs | list_repo_refs |
| GET /api/{type}s/{id}/tree/{rev}[/{path}] | list_repo_tree, list_repo_files, HfFileSystem.ls / glob, delete_patterns |
| POST /api/{type}s/{id}/paths-info/{rev} | get_paths_info, HfFileSystem.info |
| POST /api/{type}s/{id}/preupload/{rev} | preupload_lfs_files, upload_folder (regular or LFS per file) |
| POST /{prefix}{id}.git/info/lfs/objects/batch | LFS batch API (upload actions; none for an object already stored) |
| PUT /lfs-upload/{oid} , POST /lfs-verify/{oid} | the LFS upload (sha256 and size checked) and its verify action |
| POST /api/{type}s/{id}/commit/{rev} | create_commit (files, LFS files, deleted files and folders) |
| GET/HEAD /{prefix}{id}/resolve/{rev}/{path} | hf_hub_download, snapshot_download, HfFileSystem (Range too) |

Writes need a known token (`Authorization: Bearer`); a private repo is visible to its owner only (404-as-401
`RepoNotFound`, as the Hub answers). `fail_next` injects a refusal or a dropped connection for the next matching
request, so the tests can check what a user sees when an upload is cut.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub stores files above 10 MB in LFS
LFS_SUFFIXES = (".safetensors", ".bin", ".parquet", ".arrow", ".png", ".npz", ".pt", ".ckpt", ".zip")


def git_blob_oid(content: bytes) -> str:
    """Git's object id of a blob (what the Hub reports as a regular file's oid and ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class StoredFile:
    size: int
    blob: str  # key into Hub.blobs: the sha256 for LFS files, the git oid for regular ones
    lfs: bool

    @property
    def oid(self) -> str:
        return git_blob_oid(lfs_pointer(self.blob, self.size)) if self.lfs else self.blob


@dataclass
class Commit:
    sha: str
    files: dict[str, StoredFile]
    title: str
    parent: str | None
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    owner: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit sha
    commits: dict[str, Commit] = field(default_factory=dict)


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class LocalHub:
    """The server and its state. `with LocalHub(users={"hf_token": "alice"}) as hub:` then `hub.endpoint`."""

    def __init__(self, users: dict[str, str] | None = None):
        self.users = dict(users or {})  # token -> user name
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for the tests
        self.faults: list[tuple[str, re.Pattern, int | None]] = []
        self.lock = threading.RLock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LocalHub:
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, method: str, path_pattern: str, status: int | None = None, times: int = 1):
        """The next `times` `method` requests whose path matches `path_pattern` get `status` (None: the connection
        drops after the request is read, before any answer); clients retry some requests up to 5 times."""
        self.faults += [(method, re.compile(path_pattern), status)] * times

    # ------------------------------------------------------------------ state
    def repo(self, repo_type: str, repo_id: str, user: str | None, write: bool = False) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and user != repo.owner):
            raise HubError(401 if user is None else 404, "Repository Not Found", "RepoNotFound")
        if write and user != repo.owner:
            raise HubError(403, f"You don't have the rights to write to {repo_id}")
        return repo

    def commit_at(self, repo: Repo, revision: str) -> Commit:
        sha = repo.branches.get(revision, revision)
        if sha not in repo.commits:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[sha]

    def new_commit(self, repo: Repo, branch: str, files: dict[str, StoredFile], title: str) -> Commit:
        parent = repo.branches.get(branch)
        sha = hashlib.sha1(f"{repo.repo_id}{branch}{parent}{title}{time.time_ns()}".encode()).hexdigest()
        commit = Commit(sha, files, title, parent)
        repo.commits[sha] = commit
        repo.branches[branch] = sha
        return commit

    def store_regular(self, content: bytes) -> StoredFile:
        oid = git_blob_oid(content)
        self.blobs[oid] = content
        return StoredFile(len(content), oid, lfs=False)


def _json_body(handler) -> dict:
    raw = handler.body
    return json.loads(raw) if raw else {}


def _handler(hub: LocalHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: pytest shows the client's errors
            pass

        # ------------------------------------------------------------------ plumbing
        def read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def answer(self, status: int, payload=None, headers: dict | None = None, body: bytes | None = None):
            if body is None:
                body = b"" if payload is None else json.dumps(payload).encode()
                headers = {"Content-Type": "application/json", **(headers or {})}
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, str(value))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def user(self) -> str | None:
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                return None
            token = auth[len("Bearer "):]
            if token not in hub.users:
                raise HubError(401, "Invalid credentials in Authorization header")
            return hub.users[token]

        def writer(self) -> str:
            user = self.user()
            if user is None:
                raise HubError(401, "You must be authenticated to write (no token)")
            return user

        def handle_any(self):
            raw_path, _, query = self.path.partition("?")
            self.query = urllib.parse.parse_qs(query)
            self.parts = [urllib.parse.unquote(p) for p in raw_path.strip("/").split("/")]
            self.body = self.read_body() if self.command in ("POST", "PUT") else b""
            with hub.lock:
                hub.requests.append((self.command, raw_path))
                fault = next((f for f in hub.faults if f[0] == self.command and f[1].search(raw_path)), None)
                if fault:
                    hub.faults.remove(fault)
            if fault and fault[2] is None:
                self.close_connection = True
                self.connection.shutdown(2)  # a lost connection: no answer at all
                return
            try:
                if fault:
                    raise HubError(fault[2], f"injected failure {fault[2]}")
                self.route()
            except HubError as e:
                headers = {"X-Error-Message": e.message}
                if e.code:
                    headers["X-Error-Code"] = e.code
                self.answer(e.status, {"error": e.message}, headers)

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = handle_any

        # ------------------------------------------------------------------ routes
        def route(self):
            p, m = self.parts, self.command
            if p[:2] == ["api", "whoami-v2"]:
                return self.whoami()
            if p[:3] == ["api", "repos", "create"] and m == "POST":
                return self.create_repo()
            if p[:2] == ["api", "validate-yaml"] and m == "POST":
                return self.validate_yaml()
            if p[0] == "api" and len(p) >= 4 and p[1] in TYPES:
                repo_type, repo_id, rest = TYPES[p[1]], f"{p[2]}/{p[3]}", p[4:]
                if not rest and m == "GET":
                    return self.info(repo_type, repo_id, "main")
                if rest[:1] == ["revision"] and m == "GET":
                    return self.info(repo_type, repo_id, "/".join(rest[1:]))
                if rest[:1] == ["refs"] and m == "GET":
                    return self.refs(repo_type, repo_id)
                if rest[:1] == ["branch"] and m == "POST":
                    return self.create_branch(repo_type, repo_id, "/".join(rest[1:]))
                if rest[:1] == ["tree"] and m == "GET":
                    return self.tree(repo_type, repo_id, rest[1], "/".join(rest[2:]))
                if rest[:1] == ["paths-info"] and m == "POST":
                    return self.paths_info(repo_type, repo_id, "/".join(rest[1:]))
                if rest[:1] == ["preupload"] and m == "POST":
                    return self.preupload(repo_type, repo_id, "/".join(rest[1:]))
                if rest[:1] == ["commit"] and m == "POST":
                    return self.commit(repo_type, repo_id, "/".join(rest[1:]))
            if p[0] == "lfs-upload" and m == "PUT":
                return self.lfs_upload(p[1])
            if p[0] == "lfs-verify" and m == "POST":
                return self.lfs_verify(p[1])
            repo_type = {"datasets": "dataset", "spaces": "space"}.get(p[0], "model")
            q = p[1:] if repo_type != "model" else p
            if len(q) >= 2 and q[1].endswith(".git") and q[2:] == ["info", "lfs", "objects", "batch"] and m == "POST":
                return self.lfs_batch(repo_type, f"{q[0]}/{q[1][:-4]}")
            if len(q) >= 5 and q[2] == "resolve" and m in ("GET", "HEAD"):
                return self.resolve(repo_type, f"{q[0]}/{q[1]}", q[3], "/".join(q[4:]))
            raise HubError(404, f"no route {m} {self.path}")

        def whoami(self):
            user = self.user()
            if user is None:
                raise HubError(401, "Invalid username or password.")
            self.answer(200, {"type": "user", "id": user, "name": user, "fullname": user, "orgs": [],
                              "auth": {"type": "access_token", "accessToken": {"displayName": "tests", "role": "write"}}})

        def validate_yaml(self):
            body = _json_body(self)
            errors = card_metadata_errors(body.get("content", ""))
            self.answer(400 if errors else 200, {"errors": [{"message": e} for e in errors], "warnings": []})

        def create_repo(self):
            user = self.writer()
            body = _json_body(self)
            namespace = body.get("organization") or user
            if namespace != user:
                raise HubError(403, f"You don't have the rights to create a repo under {namespace}")
            repo_type = body.get("type") or "model"
            repo_id = f"{namespace}/{body['name']}"
            url = f"{hub.endpoint}/{PREFIX[repo_type]}{repo_id}"
            with hub.lock:
                if (repo_type, repo_id) in hub.repos:
                    return self.answer(409, {"error": "You already created this repo", "url": url},
                                       {"X-Error-Message": "You already created this repo"})
                private = body.get("visibility", "private" if body.get("private") else "public") != "public"
                repo = Repo(repo_type, repo_id, user, private)
                hub.repos[(repo_type, repo_id)] = repo
                gitattributes = hub.store_regular(b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
                hub.new_commit(repo, "main", {".gitattributes": gitattributes}, "initial commit")
            self.answer(200, {"url": url, "name": repo_id, "id": repo_id})

        def create_branch(self, repo_type, repo_id, branch):
            repo = hub.repo(repo_type, repo_id, self.writer(), write=True)
            body = _json_body(self)
            with hub.lock:
                if branch in repo.branches:
                    raise HubError(409, f"Reference refs/heads/{branch} already exists")
                start = body.get("startingPoint") or "main"
                repo.branches[branch] = hub.commit_at(repo, start).sha
            self.answer(200, {})

        def info(self, repo_type, repo_id, revision):
            repo = hub.repo(repo_type, repo_id, self.user())
            commit = hub.commit_at(repo, revision)
            siblings = []
            for path, f in sorted(commit.files.items()):
                entry = {"rfilename": path}
                if "blobs" in self.query.get("blobs", []) or self.query.get("blobs") == ["true"]:
                    entry.update(size=f.size, blobId=f.oid)
                    if f.lfs:
                        entry["lfs"] = {"sha256": f.blob, "size": f.size, "pointerSize": len(lfs_pointer(f.blob, f.size))}
                siblings.append(entry)
            payload = {"_id": repo_id, "id": repo_id, "author": repo.owner, "sha": commit.sha, "private": repo.private,
                       "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
                       "lastModified": commit.date, "createdAt": commit.date, "siblings": siblings}
            if repo_type == "model":
                payload["modelId"] = repo_id
                payload["library_name"] = "diffusers"
            card = commit.files.get("README.md")
            if card is not None:
                payload["cardData"] = _front_matter(hub.blobs[card.blob])
            self.answer(200, payload)

        def refs(self, repo_type, repo_id):
            repo = hub.repo(repo_type, repo_id, self.user())
            branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": sha} for b, sha in repo.branches.items()]
            self.answer(200, {"branches": branches, "converts": [], "tags": []})

        def entries(self, commit: Commit, paths: list[str] | None, recursive: bool, folder: str = ""):
            """Tree entries: the files (and the folders above them) under `folder`, or exactly `paths`."""
            files = commit.files
            dirs = {"/".join(path.split("/")[:i]) for path in files for i in range(1, path.count("/") + 1)}
            if paths is not None:
                chosen = [x for x in paths if x in files or x in dirs]
            else:
                prefix = f"{folder}/" if folder else ""
                if folder and folder not in dirs:
                    raise HubError(404, f"Folder {folder} not found", "EntryNotFound")
                chosen = sorted(x for x in set(files) | dirs if x.startswith(prefix) and x != folder
                                and (recursive or "/" not in x[len(prefix):]))
            out = []
            for path in chosen:
                if path in files:
                    f = files[path]
                    entry = {"type": "file", "path": path, "oid": f.oid, "size": f.size}
                    if f.lfs:
                        entry["lfs"] = {"oid": f.blob, "size": f.size, "pointerSize": len(lfs_pointer(f.blob, f.size))}
                    out.append(entry)
                else:
                    out.append({"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0})
            return out

        def tree(self, repo_type, repo_id, revision, folder):
            repo = hub.repo(repo_type, repo_id, self.user())
            commit = hub.commit_at(repo, revision)
            recursive = self.query.get("recursive", ["false"])[0].lower() in ("true", "1")
            self.answer(200, self.entries(commit, None, recursive, folder))

        def paths_info(self, repo_type, repo_id, revision):
            repo = hub.repo(repo_type, repo_id, self.user())
            commit = hub.commit_at(repo, revision)
            content_type = self.headers.get("Content-Type", "")
            if content_type.startswith("application/json"):
                paths = _json_body(self).get("paths", [])
            else:
                paths = urllib.parse.parse_qs(self.body.decode()).get("paths", [])
            self.answer(200, self.entries(commit, list(paths), False))

        def preupload(self, repo_type, repo_id, revision):
            repo = hub.repo(repo_type, repo_id, self.writer(), write=True)
            if revision not in repo.branches:
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            files = []
            for f in _json_body(self).get("files", []):
                lfs = f["size"] > LFS_THRESHOLD or f["path"].endswith(LFS_SUFFIXES)
                files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False})
            self.answer(200, {"files": files})

        def lfs_batch(self, repo_type, repo_id):
            hub.repo(repo_type, repo_id, self.writer(), write=True)
            body = _json_body(self)
            objects = []
            for obj in body.get("objects", []):
                entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
                if obj["oid"] not in hub.blobs:  # already stored objects get no actions: nothing to upload
                    entry["actions"] = {"upload": {"href": f"{hub.endpoint}/lfs-upload/{obj['oid']}?size={obj['size']}"},
                                        "verify": {"href": f"{hub.endpoint}/lfs-verify/{obj['oid']}"}}
                objects.append(entry)
            self.answer(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                        {"Content-Type": "application/vnd.git-lfs+json"})

        def lfs_upload(self, oid):
            size = int(self.query.get("size", ["-1"])[0])
            if hashlib.sha256(self.body).hexdigest() != oid or len(self.body) != size:
                raise HubError(400, f"LFS object {oid}: the uploaded content's sha256 or size does not match")
            with hub.lock:
                hub.blobs[oid] = self.body
            self.answer(200, {})

        def lfs_verify(self, oid):
            body = _json_body(self)
            if oid not in hub.blobs or len(hub.blobs[oid]) != body.get("size"):
                raise HubError(404, f"LFS object {oid} was not uploaded")
            self.answer(200, {})

        def commit(self, repo_type, repo_id, revision):
            user = self.writer()
            repo = hub.repo(repo_type, repo_id, user, write=True)
            lines = [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]
            header = next((x["value"] for x in lines if x["key"] == "header"), {})
            with hub.lock:
                if revision not in repo.branches:
                    raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
                files = dict(hub.commit_at(repo, revision).files)
                for line in lines:
                    key, value = line["key"], line["value"]
                    if key == "file":
                        files[value["path"]] = hub.store_regular(base64.b64decode(value["content"]))
                    elif key == "lfsFile":
                        if value["oid"] not in hub.blobs:
                            raise HubError(400, f"LFS file {value['path']}: object {value['oid']} was never uploaded")
                        files[value["path"]] = StoredFile(len(hub.blobs[value["oid"]]), value["oid"], lfs=True)
                    elif key == "deletedFile":
                        if files.pop(value["path"], None) is None:
                            raise HubError(404, f"File not found: {value['path']}", "EntryNotFound")
                    elif key == "deletedFolder":
                        folder = value["path"].rstrip("/") + "/"
                        files = {k: v for k, v in files.items() if not k.startswith(folder)}
                    elif key != "header":
                        raise HubError(400, f"unsupported commit operation {key!r}")
                commit = hub.new_commit(repo, revision, files, header.get("summary", ""))
            url = f"{hub.endpoint}/{PREFIX[repo_type]}{repo_id}/commit/{commit.sha}"
            self.answer(200, {"commitUrl": url, "commitOid": commit.sha, "commitMessage": commit.title,
                              "pullRequestUrl": None, "success": True})

        def resolve(self, repo_type, repo_id, revision, path):
            repo = hub.repo(repo_type, repo_id, self.user())
            commit = hub.commit_at(repo, revision)
            f = commit.files.get(path)
            if f is None:
                raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
            content = hub.blobs[f.blob]
            headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{f.oid}"', "Accept-Ranges": "bytes",
                       "Content-Type": "application/octet-stream"}
            if f.lfs:
                headers.update({"X-Linked-Etag": f'"{f.blob}"', "X-Linked-Size": f.size})
            ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if ranged:
                start = int(ranged.group(1))
                end = int(ranged.group(2)) if ranged.group(2) else len(content) - 1
                part = content[start:end + 1]
                headers["Content-Range"] = f"bytes {start}-{start + len(part) - 1}/{len(content)}"
                return self.answer(206, headers=headers, body=part)
            self.answer(200, headers=headers, body=content)

    return Handler


BASE_MODEL_RELATIONS = ("adapter", "merge", "quantized", "finetune")


def card_metadata_errors(card: str) -> list[str]:
    """What the Hub's YAML check refuses, as far as these cards go: YAML that is not a mapping, a `base_model` that is
    not a repo id, a `base_model_relation` the Hub does not know, `model-index` results without a metric value."""
    import yaml

    found = re.match(r"^---\n(.*?)\n---", card, re.S)
    if not found:
        return []
    try:
        data = yaml.safe_load(found.group(1))
    except yaml.YAMLError as e:
        return [f"invalid YAML: {e}"]
    if not isinstance(data, dict):
        return ["the YAML header must be a mapping"]
    errors = []
    bases = data.get("base_model")
    for base in [bases] if isinstance(bases, str) else bases or []:
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", str(base)):
            errors.append(f'"base_model" must be a Hub repo id, got {base!r}')
    if "base_model_relation" in data and data["base_model_relation"] not in BASE_MODEL_RELATIONS:
        errors.append(f'"base_model_relation" must be one of {BASE_MODEL_RELATIONS}, got {data["base_model_relation"]!r}')
    for entry in data.get("model-index") or []:
        for result in entry.get("results") or []:
            for metric in result.get("metrics") or []:
                if "value" not in metric or "type" not in metric:
                    errors.append(f"model-index metric without type or value: {metric!r}")
    return errors


def _front_matter(card: bytes) -> dict | None:
    """A card's YAML header as the Hub's `cardData`."""
    import yaml

    text = card.decode("utf-8", errors="replace")
    found = re.match(r"^---\n(.*?)\n---", text, re.S)
    return yaml.safe_load(found.group(1)) if found else None
