"""``GET /``: one small page (plain HTML and JavaScript, no build step) where a person tries the
served model: a similarity heatmap for embeddings, labels with score bars, entities marked in
the text, the filled mask's candidates, the answer marked in its context."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=1)
def page_html() -> str:
    return resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse)
async def page():
    return HTMLResponse(page_html(), headers={"Cache-Control": "no-cache"})
