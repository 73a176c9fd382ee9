"""`python -m migrator.sandbox.nextcloud --root DIR --port N --users alice:pw,bob:pw --admin admin:pw`:
the Nextcloud stand-in in its own process; prints its URL once it listens, serves until SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from migrator.sandbox.nextcloud.server import NextcloudServer


def _pairs(text: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, secret = item.partition(":")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"expected name:password, got {item!r}")
        pairs[name] = secret
    return pairs


def _groups(text: str) -> dict[str, list[str]]:
    groups = {}
    for item in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, members = item.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"expected group=member,member, got {item!r}")
        groups[name] = [m for m in members.split(",") if m]
    return groups


def _admin(text: str) -> tuple[str, str]:
    pairs = _pairs(text)
    if len(pairs) != 1:
        raise argparse.ArgumentTypeError("expected one name:password")
    return next(iter(pairs.items()))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m migrator.sandbox.nextcloud", description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="directory holding files and metadata")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--users", type=_pairs, required=True, help="alice:pw,bob:pw")
    parser.add_argument("--admin", type=_admin, default=("admin", "admin"), help="admin:pw")
    parser.add_argument("--groups", type=_groups, default={}, help="staff=alice,bob;finance=bob")
    parser.add_argument("--public-links", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--quota", type=int, default=None, help="bytes per user")
    parser.add_argument("--min-chunk-size", type=int, default=None, help="bytes; chunked upload v2's minimum")
    parser.add_argument("--tls-dir", type=Path, default=None, help="serve HTTPS with a CA and certificate kept here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    options = {} if args.min_chunk_size is None else {"min_chunk_size": args.min_chunk_size}
    server = NextcloudServer(args.root, args.users, admin=args.admin, groups=args.groups, public_links=args.public_links,
                             quota=args.quota, host=args.host, port=args.port, tls_dir=args.tls_dir, **options)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.start()
    print(server.url, flush=True)
    try:
        signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
