"""`camtrap-fast app RUN`: a local page where dropped photos are classified by the run's model, as predict does."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "app",
        help="a local web page: drop photos, see the run's top-5 species for each",
        description="Serve a page on this machine where you drop or pick photos (any size, EXIF-rotated, CMYK or "
        "grayscale) and see the top-5 species with probabilities and the model's input; drop a MegaDetector JSON "
        "file with them to classify each animal's crop. Photos are classified exactly as `camtrap-fast predict` "
        "does. Uploads live in a temporary folder, removed as each is answered and at exit; Ctrl-C stops it.",
    )
    parser.add_argument("run", type=Path, metavar="RUN", help="a trained run directory")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0: any free port)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 opens it to the network)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from camtrap_fast.errors import UserError

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: must be between 0 and 65535")
    if not (args.run / "config.json").is_file():
        raise UserError(f"{args.run}: not a camtrap-fast training run (no config.json)")
    from camtrap_fast.app.server import AppServer

    try:
        server = AppServer(args.run, args.host, args.port, args.device)
    except OSError as error:
        raise UserError(f"--host {args.host} --port {args.port}: cannot listen ({error.strerror or error}); "
                        "choose another --port") from None
    print(f"camtrap-fast app: serving {args.run} on {server.url} (Ctrl-C stops it)", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use the page", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("camtrap-fast app: stopped", flush=True)
    finally:
        server.server_close()
    return 0
