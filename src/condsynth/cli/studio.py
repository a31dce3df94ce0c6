"""``condsynth studio RUN_DIR [RUN_DIR ...]``: serve the studio page for trained runs.

Heavy imports (torch, the server) stay inside the handler so that ``condsynth --help`` is quick.
"""

from __future__ import annotations

import argparse
import sys

from condsynth.cli.common import add_device_flag, add_fast_path_flags
from condsynth.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth studio``."""
    p = subparsers.add_parser(
        "studio", help="paint layouts in the browser and watch pictures appear",
        description="Serve a web page for trained runs: paint a label map (pix2pix, pix2pixHD, "
        "SPADE) or draw a sketch (Auto-painter) and the model's picture updates after each "
        "stroke. Style controls where the model has them (SPADE's style image and 'another "
        "look', pix2pixHD's clustered looks per class or object). Noise-driven models (DCGAN) "
        "get new samples, a class picker and a slider between two samples. With several runs "
        "the page switches between them. It listens on this computer only unless --host says "
        "otherwise.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories to serve")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only; the "
                   "studio has no login, so expose it to a network only if you trust it)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks "
                   "a free one)")
    add_device_flag(p, default="auto",
                    help="where the models run (default: CUDA when available, else CPU)")
    add_fast_path_flags(p, channels_last=False)
    p.add_argument("--open", action="store_true", help="open the page in a web browser")
    p.add_argument("--verbose", action="store_true", help="log every request on stderr")
    p.set_defaults(func=cmd_studio)


def cmd_studio(args: argparse.Namespace) -> int:
    from condsynth.studio.server import is_loopback, make_server

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a TCP port (0..65535)")
    server = make_server(args.runs, host=args.host, port=args.port, device=args.device,
                         quiet=not args.verbose, precision=args.precision)
    if not is_loopback(args.host):
        print(f"condsynth: note: listening on {args.host}: anyone who can reach this address "
              "can use the studio (it has no login).", file=sys.stderr)
    names = ", ".join(f"{m.id} ({m.method.config.method}, {m.width}x{m.height})"
                      for m in server.models.values())
    print(f"condsynth studio: {server.url}  serving {names}. Ctrl-C stops it.", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
