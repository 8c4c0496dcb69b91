"""``oldphoto review OUTPUT_DIR``: the command line, the exports, and the server (uvicorn).

The server binds 127.0.0.1 (``--host`` to change it) on a free port (``--port``), prints its
URL with the access token (a line starting with ``http://``) and opens the browser unless
``--no-browser``.  With ``--export``/``--premis`` it writes the record and exits instead.
"""

from __future__ import annotations

import argparse
import getpass

import secrets
import socket
import sys
from pathlib import Path
from typing import Sequence

EPILOG = """\
The page: one photo at a time, before/after as a slider or side by side (one zoom and
position for both; full resolution when zoomed in), the change map and face crops as toggles,
the photo's effective settings, triage and provenance; a grid of thumbnails with filters.
Keys: a accept, r reject, right/left arrow next/previous, u undo the last decision.

A rejection takes a reason, a note and optionally other settings for the photo (the photo
sheet's columns), written to the run's photo sheet; "Rerun rejected" reruns exactly the
rejected photos whose settings changed.  Every decision is kept in OUTPUT_DIR/review.sqlite
(append-only).  Security: loopback only, a token in the printed URL (then a cookie), Host
allow-list, CSRF token on every change.  docs/review.md has the details.

Exit status: 0, or 2 for a command line or folder error.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oldphoto review",
        description="Review the restorations of an output folder in the browser: accept or "
                    "reject each, send rejects back with other settings, and keep the record.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", metavar="OUTPUT_DIR",
                        help="the run's output folder (final_output/, run_summary.json, ...)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=int, default=0,
                        help="port (default: a free one)")
    parser.add_argument("--reviewer", default=None, metavar="NAME",
                        help="who reviews, recorded with every decision (default: the OS user "
                             "name)")
    parser.add_argument("--no-browser", action="store_true",
                        help="print the URL, do not open a browser")
    parser.add_argument("--sample", type=float, default=None, metavar="PERCENT",
                        help="review a reproducible random share of the photos "
                             "(ceil(N x PERCENT/100) of them); the export states it")
    parser.add_argument("--seed", type=int, default=0,
                        help="the sample's seed (default: %(default)s)")
    parser.add_argument("--export", default=None, metavar="FILE.tsv",
                        help="write one row per photo (decision, reviewer, decided_at, reason, "
                             "derivative_sha256, ...) and exit")
    parser.add_argument("--premis", default=None, metavar="FILE.xml",
                        help="write the decisions as PREMIS 3 events and exit")
    parser.add_argument("--configfile", default=None, metavar="FILE",
                        help="the run's configuration, for folders made by plain snakemake "
                             "(default: OUTPUT_DIR/oldphoto_config.yaml, which oldphoto writes)")
    parser.add_argument("--workdir", default=None, metavar="DIR",
                        help="the folder snakemake ran in, with --configfile (default: the "
                             "current folder)")
    parser.add_argument("--photo-sheet", default=None, metavar="TSV", dest="photo_sheet",
                        help="the sheet rejections are written to (default: the run's, else "
                             "OUTPUT_DIR/photo_sheet.tsv)")
    parser.add_argument("--cores", default="all", metavar="N",
                        help="cores for a rerun (snakemake --cores; default: %(default)s)")
    return parser


def _fail(message: str) -> int:
    print(f"oldphoto review: error: {message}", file=sys.stderr)
    return 2


def open_review(args: argparse.Namespace):
    """The :class:`~oldphoto.review.session.Review` the command line describes."""
    from oldphoto.review.folder import read_summary
    from oldphoto.review.session import Review
    from oldphoto.review.settings import run_context

    out = Path(args.output_dir).expanduser().resolve()
    context = run_context(out, configfile=args.configfile, photo_sheet=args.photo_sheet,
                          workdir=args.workdir, summary=read_summary(out))
    sample = (args.sample, args.seed) if args.sample is not None else None
    if sample is None:
        from oldphoto.review.store import ReviewStore
        from oldphoto.review.folder import DB_NAME

        recorded = ReviewStore(out / DB_NAME).latest_sample() \
            if (out / DB_NAME).is_file() and (args.export or args.premis) else None
        if recorded:  # an export states the sample the review was drawn with
            sample = (recorded["percent"], recorded["seed"])
    review = Review(out, args.reviewer or getpass.getuser(), context=context, sample=sample,
                    record_sample=not (args.export or args.premis))
    return review


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    out = Path(args.output_dir).expanduser()
    if not out.is_dir():
        return _fail(f"{args.output_dir}: not a folder")
    if not (out / "run_summary.json").is_file() and not (out / ".oldphoto").is_dir():
        return _fail(f"{args.output_dir}: no oldphoto run here (no run_summary.json)")
    if args.sample is not None and not 0 < args.sample <= 100:
        return _fail("--sample: a percentage in (0, 100]")
    from oldphoto.errors import OldPhotoError

    try:
        review = open_review(args)
    except OldPhotoError as err:
        return _fail(err.one_line())
    if args.export or args.premis:
        from oldphoto.review.export import write_premis, write_tsv

        if args.export:
            rows = write_tsv(review, Path(args.export))
            print(f"oldphoto review: {args.export}: {len(rows)} photo(s)")
        if args.premis:
            if not review.store.decisions():
                print("oldphoto review: no decision recorded yet: no PREMIS events to write",
                      file=sys.stderr)
            else:
                events = write_premis(review, Path(args.premis))
                print(f"oldphoto review: {args.premis}: {events} PREMIS event(s)")
        return 0
    return serve(review, args)


def serve(review, args: argparse.Namespace) -> int:
    import uvicorn

    from oldphoto.review.app import ReviewApp, create_app

    if review.operator_is_reviewer:
        print(f"oldphoto review: warning: the reviewer ({review.reviewer}) is the operator "
              "who ran this workflow; archives ask for a second person (--reviewer NAME)",
              file=sys.stderr)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
        sock.listen(128)  # connections wait in the backlog from the moment the URL is printed
    except OSError as err:
        return _fail(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}")
    port = sock.getsockname()[1]
    snakefile = None
    try:
        from oldphoto.checkout import UsageError, workflow_root

        snakefile = workflow_root() / "Snakefile"
    except UsageError:
        snakefile = None
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    state = ReviewApp(review, token=token, csrf=csrf, port=port, host=args.host,
                      cores=args.cores, snakefile=snakefile)
    app = create_app(state)
    shown_host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    url = f"http://{shown_host}:{port}/?token={token}"
    counts = review.counts()
    print(f"oldphoto review: {review.output_dir}: {len(review.entries)} photo(s), "
          f"{counts['pending']} pending, {counts['accepted']} accepted, {counts['rejected']} "
          f"rejected, {counts['failed']} failed; reviewer {review.reviewer}; record "
          f"{review.store.path} (journal {review.store.journal_mode})", file=sys.stderr)
    if review.sample is not None:
        print(f"oldphoto review: sample: {review.sample.describe()}", file=sys.stderr)
    print(url, flush=True)
    if not args.no_browser:
        import webbrowser

        webbrowser.open(url)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())



