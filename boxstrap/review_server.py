"""``boxstrap review RUN``: a page on this machine for checking and correcting a run's pseudo boxes.

The page (``boxstrap/review_page/``: plain HTML, CSS and JavaScript, nothing fetched from elsewhere)
shows the run's photos in review order (``RUN/localize/review.json``:
:func:`datasets.review.review_order` of the classifier's confidence; once the boxes stage has run,
of that and the box model's confidence together, :func:`datasets.review.joint_confidence`), each
with its pseudo boxes (split by the box model where the run got that far: :func:`shown_boxes_path`),
and sends every change as it is made; :class:`ReviewRun` checks it and
saves the photo's reviewed boxes into ``RUN/review/corrections.json`` (boxes JSON, written
atomically), so closing the browser loses nothing and reopening resumes. An accepted photo is
saved with its boxes unchanged: a reviewed box is a hand box. ``boxstrap pipeline`` run again on
RUN reads the corrections as hand boxes (:func:`boxstrap.pipeline.run_pipeline`).

Security, as Jupyter does it: the server binds 127.0.0.1 unless told otherwise, every request
carries a random token (``?token=`` in the address the command prints, the ``X-Boxstrap-Token``
header, or the cookie the page gets with it), and it serves only its page's three files and the run's prepared
photos by their number in the review order: no request names a path, and one that tries
(``..``) is refused.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from datasets.annotations import Box, ImageAnnotation, read_annotations, write_annotations
from datasets.photo_items import PhotoItem, find_photos
from datasets.review import joint_confidence, review_order

__all__ = ["CORRECTIONS", "ReviewRun", "ReviewServer", "box_confidence_path", "corrections_path",
           "shown_boxes_path"]

log = logging.getLogger(__name__)

#: Where the reviewed boxes of a run are kept, relative to RUN.
CORRECTIONS = "review/corrections.json"
PAGE = Path(__file__).with_name("review_page")
#: What the page is made of: address -> (file, content type).
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/review.js": ("review.js", "text/javascript; charset=utf-8"),
          "/review.css": ("review.css", "text/css; charset=utf-8")}
COOKIE = "boxstrap_review_token"
MAX_BODY = 1 << 20
MAX_BOXES = 100


def corrections_path(run: str | os.PathLike) -> Path:
    """``RUN/review/corrections.json``."""
    return Path(run) / CORRECTIONS


def shown_boxes_path(run: str | os.PathLike) -> Path:
    """The pseudo boxes a review shows: the ones refined by the box model (groups split)
    (``RUN/boxes/pseudo_boxes.json``) when the boxes stage finished after the localize stage,
    else the localize stage's (``RUN/localize/pseudo_boxes.json``)."""
    run = Path(run)
    split = run / "boxes" / "pseudo_boxes.json"
    return split if split.is_file() and _boxes_stage_current(run) else run / "localize" / "pseudo_boxes.json"


def box_confidence_path(run: str | os.PathLike) -> Path | None:
    """The box model's confidence in each photo (``RUN/boxes/model/photo_confidence.json``) when
    the boxes stage finished after the localize stage, else None (the classifier's order alone)."""
    from detector.train_box_model import PHOTO_CONFIDENCE

    path = Path(run) / "boxes" / "model" / PHOTO_CONFIDENCE
    return path if path.is_file() and _boxes_stage_current(Path(run)) else None


def _boxes_stage_current(run: Path) -> bool:
    try:
        return (run / "boxes" / "stage.json").stat().st_mtime >= (run / "localize" / "stage.json").stat().st_mtime
    except FileNotFoundError:  # a stage that never finished
        return False


@dataclass(frozen=True)
class _Photo:
    item: PhotoItem
    width: int
    height: int
    label: str
    boxes: tuple[Box, ...]
    confidence: float
    note: str


class ReviewRun:
    """A pipeline run's photos in review order, their pseudo boxes and the reviewed boxes so far.

    Raises
    ------
    FileNotFoundError
        If RUN holds no finished ``localize`` stage (run ``boxstrap pipeline`` first).
    """

    def __init__(self, run: str | os.PathLike) -> None:
        self.run = Path(run)
        localize = self.run / "localize"
        for needed in (localize / "pseudo_boxes.json", localize / "review.json", self.run / "train/model/labels.json"):
            if not needed.is_file():
                raise FileNotFoundError(f"{self.run} is not a finished pipeline run: {needed} is missing. Run "
                                        "`boxstrap pipeline PHOTOS --out RUN` first.")
        self.labels = tuple(json.loads((self.run / "train/model/labels.json").read_text(encoding="utf-8")))
        self.root, items = find_photos(self.run / "prepare", self.labels)
        by_name = {item.name: item for item in items}
        self.boxes_path = shown_boxes_path(self.run)
        pseudo = {a.image: a for a in read_annotations(self.boxes_path, "boxes-json", labels=self.labels)}
        review = json.loads((localize / "review.json").read_text(encoding="utf-8"))
        self.photos: list[_Photo] = []
        for entry in review:
            name = entry["image"]
            if name not in by_name or name not in pseudo:
                continue
            ann = pseudo[name]
            self.photos.append(_Photo(by_name[name], ann.width, ann.height, entry["class"], ann.boxes,
                                      float(entry["confidence"]), entry.get("note") or ""))
        self.order = "classifier"
        confidence_path = box_confidence_path(self.run)
        if confidence_path is not None:
            from detector.train_box_model import read_photo_confidence

            try:
                box = read_photo_confidence(confidence_path)
                if all(p.item.name in box for p in self.photos):
                    # The classifier's and the box model's doubt together (datasets.review.joint_confidence).
                    joint = joint_confidence([p.confidence for p in self.photos],
                                             [box[p.item.name] for p in self.photos])
                    self.photos = [self.photos[i] for i in review_order(joint, [p.item.group for p in self.photos])]
                    self.order = "classifier and box model"
            except (ValueError, TypeError, KeyError) as error:  # a damaged file: the classifier's order
                log.warning("%s is not a list of {image, confidence} (%s); the review order is the "
                            "classifier's alone", confidence_path, error)
        self._index = {p.item.name: i for i, p in enumerate(self.photos)}
        self._lock = threading.Lock()
        self.reviewed: dict[str, ImageAnnotation] = {}
        path = corrections_path(self.run)
        if path.is_file():
            for ann in read_annotations(path, "boxes-json", labels=self.labels):
                name = self._name_in_run(ann.image)
                if name is not None:
                    self.reviewed[name] = ImageAnnotation(name, ann.width, ann.height, ann.boxes, label=ann.label)

    def state(self) -> dict:
        """What the page shows: the labels and every photo with its current boxes."""
        with self._lock:
            return {"labels": list(self.labels), "photos": [self._photo_state(i) for i in range(len(self.photos))]}

    def _photo_state(self, i: int) -> dict:
        photo = self.photos[i]
        reviewed = self.reviewed.get(photo.item.name)
        boxes = reviewed.boxes if reviewed is not None else photo.boxes
        return {"id": i, "name": photo.item.name, "width": photo.width, "height": photo.height,
                "label": reviewed.label if reviewed is not None and reviewed.label else photo.label,
                "confidence": photo.confidence, "note": photo.note, "reviewed": reviewed is not None,
                "boxes": [{"xyxy": [b.xmin, b.ymin, b.xmax, b.ymax], "label": b.label} for b in boxes]}

    def photo_file(self, i: int) -> Path:
        """The prepared photo shown for photo ``i`` (inside RUN)."""
        return self.photos[i].item.path

    def correct(self, payload: object) -> dict:
        """Record one photo's reviewed boxes (or, with ``"reviewed": false``, forget them: undo) and
        save every reviewed photo; return the photo's new state.

        ``payload``: ``{"id": int, "reviewed": bool, "label": str, "boxes": [{"xyxy": [x0, y0, x1, y1],
        "label": str}, ...]}`` with boxes in the photo's pixels (continuous edges).

        Raises
        ------
        ValueError
            Naming what is wrong with the payload; nothing is saved then.
        """
        photo_id, reviewed, label, boxes = self._check(payload)
        photo = self.photos[photo_id]
        with self._lock:
            if reviewed:
                self.reviewed[photo.item.name] = ImageAnnotation(photo.item.name, photo.width, photo.height,
                                                                 boxes, label=label)
            else:
                self.reviewed.pop(photo.item.name, None)
            self._save()
            return self._photo_state(photo_id)

    def _check(self, payload: object) -> tuple[int, bool, str, tuple[Box, ...]]:
        if not isinstance(payload, dict):
            raise ValueError("a correction is a JSON object with id, reviewed, label and boxes.")
        unknown = set(payload) - {"id", "reviewed", "label", "boxes"}
        if unknown:
            raise ValueError(f"a correction has no field {sorted(unknown)[0]!r} (fields: id, reviewed, label, boxes).")
        photo_id = payload.get("id")
        if isinstance(photo_id, bool) or not isinstance(photo_id, int) or not 0 <= photo_id < len(self.photos):
            raise ValueError(f"id must be the number of a photo, 0 to {len(self.photos) - 1}. Received: {photo_id!r}")
        reviewed = payload.get("reviewed", True)
        if not isinstance(reviewed, bool):
            raise ValueError(f"reviewed must be true or false. Received: {reviewed!r}")
        photo = self.photos[photo_id]
        label = payload.get("label", photo.label)
        if label not in self.labels:
            raise ValueError(f"label must be one of {list(self.labels)}. Received: {label!r}")
        raw = payload.get("boxes", [])
        if not isinstance(raw, list) or len(raw) > MAX_BOXES:
            raise ValueError(f"boxes must be a list of at most {MAX_BOXES} boxes.")
        boxes = []
        for k, box in enumerate(raw):
            where = f"box {k} of photo {photo.item.name!r}"
            if not isinstance(box, dict) or not isinstance(box.get("xyxy"), list) or len(box["xyxy"]) != 4:
                raise ValueError(f"{where} must be {{\"xyxy\": [x0, y0, x1, y1], \"label\": ...}}.")
            values = box["xyxy"]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise ValueError(f"{where}: coordinates must be numbers. Received: {values!r}")
            x0, y0, x1, y1 = (float(v) for v in values)
            if not (0 <= x0 < x1 <= photo.width and 0 <= y0 < y1 <= photo.height):
                raise ValueError(f"{where}: [{x0:g}, {y0:g}, {x1:g}, {y1:g}] is not a box inside the photo "
                                 f"({photo.width}x{photo.height}, x0 < x1, y0 < y1).")
            box_label = box.get("label", label)
            if box_label not in self.labels:
                raise ValueError(f"{where}: label must be one of {list(self.labels)}. Received: {box_label!r}")
            boxes.append(Box(box_label, x0, y0, x1, y1))
        return photo_id, reviewed, label, tuple(boxes)

    def _save(self) -> None:
        path = corrections_path(self.run)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Names relative to the corrections file's folder, as every boxes JSON names its photos.
        relative = [ImageAnnotation(os.path.relpath(self.root / a.image, path.parent), a.width, a.height, a.boxes,
                                    label=a.label)
                    for a in (self.reviewed[p.item.name] for p in self.photos if p.item.name in self.reviewed)]
        if relative:
            write_annotations(relative, path, "boxes-json", labels=self.labels)
        else:
            path.unlink(missing_ok=True)

    def _name_in_run(self, image: str) -> str | None:
        resolved = os.path.normpath(corrections_path(self.run).parent / image)
        for name in (image, os.path.relpath(resolved, self.root)):
            name = Path(name).as_posix()
            if name in self._index:
                return name
        return None


class ReviewServer(ThreadingHTTPServer):
    """The page's HTTP server for one :class:`ReviewRun` (stop it with ``shutdown()``)."""

    daemon_threads = True

    def __init__(self, review: ReviewRun, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> None:
        self.review = review
        self.token = token or secrets.token_urlsafe(24)
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/?token={self.token}"


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        log.info("review page: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self._allowed()
        if path is None:
            return
        if path in STATIC:
            name, kind = STATIC[path]
            # The page's own files and its requests carry the token as a cookie of this address only.
            cookie = f"{COOKIE}={self.server.token}; Path=/; HttpOnly; SameSite=Strict"
            return self._send(HTTPStatus.OK, (PAGE / name).read_bytes(), kind, cookie=cookie)
        if path == "/api/state":
            return self._json(HTTPStatus.OK, self.server.review.state())
        if path.startswith("/photo/") and path[len("/photo/"):].isdigit():
            i = int(path[len("/photo/"):])
            if i < len(self.server.review.photos):
                file = self.server.review.photo_file(i)
                kind = "image/png" if file.suffix.lower() == ".png" else "image/jpeg"
                return self._send(HTTPStatus.OK, file.read_bytes(), kind)
        self._json(HTTPStatus.NOT_FOUND, {"error": f"nothing at {path}"})

    def do_POST(self) -> None:  # noqa: N802
        path = self._allowed()
        if path is None:
            return
        if path != "/api/correction":
            return self._json(HTTPStatus.NOT_FOUND, {"error": f"nothing to post at {path}"})
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "a correction is at most 1 MB."})
        try:
            payload = json.loads(self.rfile.read(length) or b"null")
            state = self.server.review.correct(payload)
        except (ValueError, RecursionError) as error:
            return self._json(HTTPStatus.BAD_REQUEST, {"error": f"correction refused: {error}"})
        self._json(HTTPStatus.OK, state)

    def _allowed(self) -> str | None:
        """The request's path when its token is right and it names no path outside the page; else
        None, the refusal sent."""
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        cookie = SimpleCookie(self.headers.get("Cookie") or "")
        given = (self.headers.get("X-Boxstrap-Token") or parse_qs(parts.query).get("token", [""])[0]
                 or (cookie[COOKIE].value if COOKIE in cookie else ""))
        if not hmac.compare_digest(given.encode(), self.server.token.encode()):
            self._json(HTTPStatus.FORBIDDEN, {"error": "a wrong or missing token: open the address "
                                                       "`boxstrap review` printed"})
            return None
        if ".." in path.split("/") or "\\" in path or "\0" in path:
            self._json(HTTPStatus.FORBIDDEN, {"error": f"refused: {path} leaves the review page"})
            return None
        return path

    def _json(self, status: HTTPStatus, body: object) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, kind: str, *, cookie: str | None = None) -> None:
        self.send_response(status)
        if cookie is not None:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)
