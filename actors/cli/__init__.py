"""``imctl``: a command-line client for the incident manager's gRPC API.

A gRPC client (it imports only grpc, the generated protos, google.protobuf, the standard
library and the pure domain layer, which needs nothing else), so it runs anywhere the API is
reachable. ``imctl routes test`` asks no server: it reads the configuration file (see
actors/cli/routes.py). ``imctl --help`` lists the commands; ``main`` is the console-script
entry point.

Exit status: 0 on success; 1 when the server answers with an error (printed as
``error: CODE: details``), a test send is not delivered, or an alert is not accepted;
2 for bad command-line input (including a --token-file, --cacert, --cert or --key file that
cannot be read). Ctrl-C ends ``watch`` with 0.
"""
from __future__ import annotations

import os
import sys

import grpc

from . import render
from .commands import Api
from .credentials import open_channel, with_token
from .options import parse

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv, dict(os.environ))
    except SystemExit as stop:  # argparse: 2 for bad input, 0 for --help
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    if getattr(args, "offline", False):
        return args.handler(args)
    try:
        channel = open_channel(args.server, args.tls)
    except OSError as error:  # a host of several --server addresses cannot be resolved
        print(f"imctl: {error}", file=sys.stderr)
        return 1
    try:
        status = args.handler(Api.over(with_token(channel, args.token), args.timeout, args.json), args)
    except grpc.RpcError as error:
        report(error, args.server, tls=args.tls is not None)
        status = 1
    except KeyboardInterrupt:
        # Not closing the channel: a call interrupted inside grpc can make close() wait forever.
        print(file=sys.stderr)
        return 130
    channel.close()
    return status


def report(error: grpc.RpcError, server: str, tls: bool) -> None:
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or str(error)
    print(f"error: {code.name}: {render.clean(details)}", file=sys.stderr)
    if code == grpc.StatusCode.UNAVAILABLE:
        check = ("does --cacert hold the CA that signed its certificate (and, under mutual TLS, "
                 "do --cert/--key hold one its client CA signed)?" if tls else
                 "does it speak plaintext (for TLS give --cacert)?")
        print(f"hint: is the server running at {server}? {check}", file=sys.stderr)
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        print("hint: the server did not answer in time; try a larger --timeout", file=sys.stderr)
