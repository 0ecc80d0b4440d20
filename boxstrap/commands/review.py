"""Check and correct a pipeline run's pseudo boxes in a browser, photo by photo, lowest confidence
first. The page is served on this machine only (127.0.0.1, a random token in its address); every
change is saved to RUN/review/corrections.json as it is made, and `boxstrap pipeline` run again on
RUN learns from the reviewed photos as from hand boxes. Stop it with Ctrl+C; reopening resumes."""

from __future__ import annotations

import argparse

__all__ = ["HELP", "NAME", "TENSORFLOW", "add_arguments", "run"]

NAME = "review"
HELP = "check and correct a run's pseudo boxes in a browser (saved as hand boxes for the next run)"
TENSORFLOW = False  # the command never imports it (boxstrap.cli)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a pipeline run folder (`boxstrap pipeline ... --out RUN`)")
    parser.add_argument("--port", type=int, default=0, help="port to serve on (default: any free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default %(default)s: this machine only)")
    parser.add_argument("--no-browser", action="store_true", help="print the address, do not open a browser")


def run(args: argparse.Namespace) -> int:
    import threading
    import webbrowser

    from boxstrap.review_server import ReviewRun, ReviewServer, corrections_path

    review = ReviewRun(args.run)
    server = ReviewServer(review, host=args.host, port=args.port)
    reviewed = len(review.reviewed)
    print(f"reviewing {len(review.photos)} photos of {args.run} ({reviewed} reviewed so far) with the boxes of "
          f"{review.boxes_path}; corrections are saved to {corrections_path(args.run)}")
    print(f"open {server.url}  (Ctrl+C to stop)", flush=True)
    if not args.no_browser:
        threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print(f"stopped; {len(review.reviewed)} photos reviewed in {corrections_path(args.run)}. Run `boxstrap "
          f"pipeline` again on {args.run} to learn from them.")
    return 0
