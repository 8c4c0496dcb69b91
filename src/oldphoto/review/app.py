"""The review server's web application (Starlette): the page, its JSON API and the images.

Routes (all behind :class:`oldphoto.review.security.Guard`):

=========================================  ======================================================
``GET /``                                  the page (``static/index.html`` with its CSRF token)
``GET /static/review.js``, ``review.css``  the page's script and style (package data)
``GET /api/state``                         counts, reviewer, operator warning, sample, filters,
                                           reasons, the sheet's columns, the rerun
``GET /api/photos?status&mode&faces&...``  one page (``offset``, ``limit`` ≤ 200) of a filter
``GET /api/photo/{id}``                    one photo: settings, triage, provenance, decision
``GET /api/nav?from&dir&...``              the next/previous photo of a filter
``POST /api/photo/{id}/decision``          accept or reject (JSON; reason, note, new settings)
``POST /api/undo``                         take back the reviewer's last decision
``GET/POST /api/rerun``                    the rerun's progress / start it
``GET /img/{id}/{kind}``                   ``thumb``, ``final``, ``final-full``, ``original``,
                                           ``original-full``, ``changes``, ``faces``
``GET /files/{path}``                      a file of the output folder (logs, sidecars)
=========================================  ======================================================

Photos are addressed by their index in the folder's order, never by a path; ``/files/`` takes
a path and serves it only under the output folder (:func:`oldphoto.review.images.inside`).
"""

from __future__ import annotations

import threading
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from oldphoto.errors import OldPhotoError
from oldphoto.layout import Layout
from oldphoto.review.folder import CACHE_DIR, DB_NAME, PhotoEntry, sidecar
from oldphoto.review.images import (OutsideFolder, inside, screen_rendering, thumbnail,
                                    viewable)
from oldphoto.review.rerun import Rerun, rerun_command
from oldphoto.review.security import Guard, allowed_hosts
from oldphoto.review.session import FinalChanged, Review
from oldphoto.review.store import REASONS, utc_now
from oldphoto.sheet import SETTINGS, sheet_cell

MAX_PAGE = 200
STATIC = {"review.js": "text/javascript", "review.css": "text/css"}
HIDDEN = (".oldphoto", ".snakemake", DB_NAME)
"""Top-level entries of the output folder that ``/files/`` never serves."""


def _static(name: str) -> bytes:
    return resources.files("oldphoto.review").joinpath("static", name).read_bytes()


def _sheet_columns() -> list[dict[str, Any]]:
    """Each setting column of the photo sheet with the values its schema allows."""
    from oldphoto.sheet import _load_schema

    schema = _load_schema(None)
    columns = []
    for name in SETTINGS:
        spec = schema["properties"].get(name, {})
        columns.append({"name": name, "values": spec.get("enum"),
                        "description": spec.get("description", "")})
    return columns


class ReviewApp:
    """State shared by the routes: the review, the secrets, the running rerun."""

    def __init__(self, review: Review, *, token: str, csrf: str, port: int,
                 host: str | None = None, cores: str = "all",
                 snakefile: Path | None = None) -> None:
        self.review = review
        self.token = token
        self.csrf = csrf
        self.cores = cores
        self.snakefile = snakefile
        self.cache_dir = review.output_dir / CACHE_DIR
        self.rerun: Rerun | None = None
        self.rerun_lock = threading.Lock()
        self.columns = _sheet_columns()
        self.hosts = allowed_hosts(port, host)

    # -- helpers ----------------------------------------------------------------------------
    def entry(self, request: Request) -> PhotoEntry:
        try:
            return self.review.entries[int(request.path_params["id"])]
        except (ValueError, IndexError):
            raise LookupError(request.path_params["id"]) from None

    def filters(self, request: Request) -> dict[str, Any]:
        q = request.query_params
        status = q.get("status", "pending")
        order = q.get("order", "name")
        return {"status": status if status in ("all", "pending", "accepted", "rejected",
                                               "failed") else "pending",
                "mode": q.get("mode", "any") or "any",
                "faces": q.get("faces") in ("1", "true", "yes"),
                "order": order if order in ("name", "changed") else "name"}

    def item(self, entry: PhotoEntry) -> dict[str, Any]:
        return {"id": entry.index, "photo": entry.stem, "status": self.review.status(entry),
                "run_status": entry.status, "mode": entry.mode, "faces": entry.faces,
                "changed_fraction": entry.changed_fraction, "reasons": entry.reasons,
                "version": self.review.final_version(entry)}

    def rerun_state(self) -> dict[str, Any]:
        due = self.review.due_for_rerun()
        stay = self.review.rejected_without_new_settings()
        state = {"due": [e.stem for e in due], "rejected_unchanged": [e.stem for e in stay],
                 "available": self.snakefile is not None and self.review.context.config_file
                 is not None,
                 "why_not": None, "current": self.rerun.state() if self.rerun else None}
        if self.review.context.config_file is None:
            state["why_not"] = ("the run's configuration is unknown: start the review with "
                                "--configfile (plain snakemake runs)")
        elif self.snakefile is None:
            state["why_not"] = "the workflow (Snakefile) was not found"
        return state

    # -- routes -----------------------------------------------------------------------------
    def page(self, request: Request) -> Response:
        html = _static("index.html").decode("utf-8").replace("__CSRF__", self.csrf)
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response("not found", 404)
        return Response(_static(name), media_type=STATIC[name],
                        headers={"cache-control": "no-cache"})

    def state(self, request: Request) -> Response:
        review = self.review
        context = review.context
        return JSONResponse({
            "folder": str(review.output_dir), "reviewer": review.reviewer,
            "operator": review.operator, "operator_is_reviewer": review.operator_is_reviewer,
            "counts": review.counts(), "modes": review.modes(),
            "sample": review.sample.describe() if review.sample else None,
            "reasons": [{"code": c, "label": label} for c, label in REASONS.items()],
            "columns": self.columns,
            "sheet": str(context.sheet) if context.sheet else None,
            "sheet_problem": context.sheet_problem,
            "backend": review.summary.get("backend"), "finished": review.summary.get("finished"),
            "rerun": self.rerun_state(),
        }, headers={"cache-control": "no-store"})

    def photos(self, request: Request) -> Response:
        chosen = self.review.select(**self.filters(request))
        try:
            offset = max(0, int(request.query_params.get("offset", 0)))
            limit = min(MAX_PAGE, max(1, int(request.query_params.get("limit", 60))))
        except ValueError:
            return JSONResponse({"error": "offset and limit are whole numbers"}, 400)
        page = chosen[offset:offset + limit]
        return JSONResponse({"total": len(chosen), "offset": offset,
                             "items": [self.item(e) for e in page]},
                            headers={"cache-control": "no-store"})

    def nav(self, request: Request) -> Response:
        chosen = self.review.select(**self.filters(request))
        direction = request.query_params.get("dir", "next")
        try:
            start = int(request.query_params.get("from", -1))
        except ValueError:
            return JSONResponse({"error": "from is a photo id"}, 400)
        order = [e.index for e in chosen]
        if not order:
            return JSONResponse({"id": None})
        if start in order:
            at = order.index(start)
            target = at + 1 if direction == "next" else at - 1
            found = order[target] if 0 <= target < len(order) else None
        else:  # the photo left the filter (decided): the neighbour in folder order
            rank = {idx: pos for pos, idx in enumerate(e.index for e in self.review.entries)}
            if direction == "next":
                later = [i for i in order if rank[i] > rank.get(start, -1)]
                found = later[0] if later else None
            else:
                earlier = [i for i in order if rank[i] < rank.get(start, len(rank))]
                found = earlier[-1] if earlier else None
        return JSONResponse({"id": found})

    def photo(self, request: Request) -> Response:
        try:
            entry = self.entry(request)
        except LookupError:
            return JSONResponse({"error": "no such photo"}, 404)
        review = self.review
        side = sidecar(review.output_dir, entry.stem) or {}
        try:
            settings = review.settings(entry)
            row = {k: sheet_cell(k, v) for k, v in
                   review.context.sheet_rows().get(entry.stem, {}).items()}
            settings_error = None
        except OldPhotoError as err:
            settings, row, settings_error = {}, {}, err.one_line()
        layout = Layout(str(review.output_dir))
        faces_strip = Path(layout.preview("faces", entry.stem))
        decision = review.decision_in_force(entry)
        previous = review.decisions.get(entry.stem)
        version = review.final_version(entry)
        urls = {}
        if entry.final is not None:
            urls.update(final=f"/img/{entry.index}/final?v={version}",
                        final_full=f"/img/{entry.index}/final-full?v={version}")
        if entry.original is not None:
            urls.update(original=f"/img/{entry.index}/original",
                        original_full=f"/img/{entry.index}/original-full")
        if Path(layout.preview("changes", entry.stem)).is_file():
            urls["changes"] = f"/img/{entry.index}/changes?v={version}"
        if faces_strip.is_file():
            urls["faces"] = f"/img/{entry.index}/faces?v={version}"
        logs = sorted(str(p.relative_to(review.output_dir))
                      for p in (review.output_dir / "logs").glob(f"*/{entry.stem}.log"))
        return JSONResponse({
            **self.item(entry),
            "settings": settings, "from_sheet": sorted(k for k in row if row[k]),
            "sheet_row": row, "settings_error": settings_error,
            "triage": entry.triage,
            "provenance": {k: side.get(k) for k in ("created", "software", "backend",
                                                   "digital_source_type", "source",
                                                   "checkpoints", "settings", "changes",
                                                   "output")} if side else None,
            "decision": _decision_json(decision),
            "superseded": _decision_json(previous) if previous and decision is None else None,
            "urls": urls, "logs": logs,
            "size": [side.get("output", {}).get("width"), side.get("output", {}).get("height")]
            if side.get("output") else None,
        }, headers={"cache-control": "no-store"})

    async def decide(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, 400)
        return await _in_thread(self._decide, request, body)

    def _decide(self, request: Request, body: Any) -> Response:
        try:
            entry = self.entry(request)
        except LookupError:
            return JSONResponse({"error": "no such photo"}, 404)
        if not isinstance(body, dict) or body.get("action") not in ("accepted", "rejected"):
            return JSONResponse({"error": "action must be accepted or rejected"}, 400)
        reason = body.get("reason")
        if body["action"] == "rejected" and reason not in REASONS:
            return JSONResponse({"error": f"a rejection needs a reason: {sorted(REASONS)}"}, 400)
        settings = body.get("settings")
        if settings is not None and (not isinstance(settings, dict)
                                     or set(settings) - set(SETTINGS)):
            return JSONResponse({"error": "settings: sheet columns only"}, 400)
        note = body.get("note")
        if note is not None and (not isinstance(note, str) or len(note) > 4000):
            return JSONResponse({"error": "note: text of at most 4000 characters"}, 400)
        try:
            decision = self.review.decide(entry, body["action"], reason=reason, note=note,
                                          seen_version=body.get("version"),
                                          new_row=settings if body["action"] == "rejected"
                                          else None)
        except FinalChanged:
            return JSONResponse({"error": "the photo's final output changed since you looked "
                                          "at it (a rerun replaced it): look again"}, 409)
        except OldPhotoError as err:
            return JSONResponse({"error": err.one_line()}, 400)
        except ValueError as err:
            return JSONResponse({"error": str(err)}, 400)
        return JSONResponse({"decision": _decision_json(decision), "item": self.item(entry),
                             "counts": self.review.counts()})

    async def undo(self, request: Request) -> Response:
        return await _in_thread(self._undo)

    def _undo(self) -> Response:
        undone = self.review.undo()
        entry = self.review.by_stem.get(undone.photo) if undone else None
        return JSONResponse({"undone": undone.photo if undone else None,
                             "id": entry.index if entry else None,
                             "counts": self.review.counts()})

    def rerun_get(self, request: Request) -> Response:
        return JSONResponse(self.rerun_state(), headers={"cache-control": "no-store"})

    async def rerun_post(self, request: Request) -> Response:
        return await _in_thread(self._rerun_start)

    def _rerun_start(self) -> Response:
        from oldphoto.locks import FolderInUse, take_ownership

        with self.rerun_lock:
            if self.rerun is not None and self.rerun.running:
                return JSONResponse({"error": "a rerun is already running"}, 409)
            state = self.rerun_state()
            if not state["available"]:
                return JSONResponse({"error": state["why_not"]}, 409)
            due = self.review.due_for_rerun()
            if not due:
                return JSONResponse({"error": "no rejected photo has new settings: nothing to "
                                              "rerun"}, 409)
            context = self.review.context
            # The rerun claims the folder as the oldphoto command does (docs/resume.md): a lock
            # left by a dead run of this machine goes, a live or unknown owner refuses it.
            try:
                ownership, _ = take_ownership(context.workdir)
            except FolderInUse as err:
                return JSONResponse({"error": f"the folder is in use by another run: "
                                              f"{err.owner} ({err.verdict.reason})"}, 409)
            command = rerun_command(snakefile=self.snakefile, workdir=context.workdir,
                                    configfile=context.config_file,
                                    targets=self.review.rerun_targets(due), cores=self.cores)
            stamp = utc_now().replace(":", "").replace("-", "")
            self.rerun = Rerun(command=command, log=self.cache_dir / "reruns" / f"{stamp}.log",
                               photos=[e.stem for e in due],
                               on_exit=lambda _: self.review.refresh(),
                               ownership=ownership).start()
            return JSONResponse(self.rerun_state(), 202)

    def image(self, request: Request) -> Response:
        try:
            entry = self.entry(request)
        except LookupError:
            return Response("no such photo", 404)
        kind = request.path_params["kind"]
        out = self.review.output_dir
        layout = Layout(str(out))
        try:
            if kind in ("thumb", "final", "final-full"):
                if entry.final is None:
                    return Response("no final output", 404)
                source = inside(out, str(entry.final.relative_to(out)))
                if kind == "thumb":
                    path = thumbnail(source, self.cache_dir)
                elif kind == "final":
                    path = screen_rendering(source, self.cache_dir)
                else:
                    path = viewable(source, self.cache_dir, native_ok=True)
            elif kind in ("original", "original-full"):
                if entry.original is None or not entry.original.is_file():
                    return Response("the original is not reachable", 404)
                path = (screen_rendering(entry.original, self.cache_dir, native_ok=False)
                        if kind == "original" else
                        viewable(entry.original, self.cache_dir, native_ok=False))
            elif kind in ("changes", "faces"):
                path = inside(out, str(Path(layout.preview(kind, entry.stem)).relative_to(out)))
            else:
                return Response("unknown image kind", 404)
        except OutsideFolder:
            return Response("refused: the file lies outside the output folder", 403)
        except OldPhotoError as err:
            return Response(err.one_line(), 422)
        if not path.is_file():
            return Response("not found", 404)
        return FileResponse(path, headers={"cache-control": "private, max-age=3600"})

    def files(self, request: Request) -> Response:
        relative = request.path_params["path"]
        out = self.review.output_dir
        try:
            path = inside(out, relative)
        except OutsideFolder:
            return Response("refused: the path leaves the output folder", 403)
        top = path.relative_to(out).parts[0] if path != out else ""
        if top in HIDDEN or top.startswith(".") or not path.is_file():
            return Response("not found", 404)
        media = "text/plain; charset=utf-8" if path.suffix in (".log", ".tsv", ".yaml") \
            else None
        return FileResponse(path, media_type=media, headers={"cache-control": "no-cache"})


async def _in_thread(function, *args):
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(function, *args)


def _decision_json(decision) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {"action": decision.action, "reason": decision.reason,
            "reason_label": REASONS.get(decision.reason or ""), "note": decision.note,
            "reviewer": decision.reviewer, "decided_at": decision.decided_at,
            "derivative_sha256": decision.derivative_sha256,
            "new_settings": decision.new_settings}


def create_app(state: ReviewApp):
    """The ASGI application: the routes behind the guard."""
    routes = [
        Route("/", state.page),
        Route("/static/{name}", state.static),
        Route("/api/state", state.state),
        Route("/api/photos", state.photos),
        Route("/api/nav", state.nav),
        Route("/api/photo/{id:int}", state.photo),
        Route("/api/photo/{id:int}/decision", state.decide, methods=["POST"]),
        Route("/api/undo", state.undo, methods=["POST"]),
        Route("/api/rerun", state.rerun_get, methods=["GET"]),
        Route("/api/rerun", state.rerun_post, methods=["POST"]),
        Route("/img/{id:int}/{kind}", state.image),
        Route("/files/{path:path}", state.files),
    ]
    app = Starlette(routes=routes)
    return Guard(app, token=state.token, csrf=state.csrf, hosts=state.hosts)
