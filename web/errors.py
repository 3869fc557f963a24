"""Plain error pages: an unknown address, a forged token and a refused form all look the same
to a browser (a short page, no detail); the JSON API under /api/ answers its own error objects."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .templating import mark_token_page, templates

MESSAGES = {
    400: ("Bad request", "This form could not be accepted. Go back, reload the page and try again."),
    404: ("Page not found", "There is nothing at this address. If you followed a link from an email, "
                            "check that the whole link was copied."),
    405: ("Not allowed", "This address does not accept that kind of request."),
    413: ("Too large", "The request was too large."),
    429: ("Too many requests", "Too many unknown links were tried from your address. Wait a minute and try again."),
}


def wants_json_path(path: str) -> bool:
    """Whether an answer on this path is for a machine (the JSON API, incoming webhooks)."""
    return path.startswith(("/api/", "/webhooks/"))


def wants_json(request: Request) -> bool:
    return wants_json_path(request.url.path)


def error_page(request: Request, status: int):
    title, text = MESSAGES.get(status, ("Error", "Something went wrong."))
    response = templates.TemplateResponse(request, "error.html", {"title": title, "text": text, "status": status,
                                                                  "page_title": title},
                                          status_code=status)
    # Error pages may sit on a token address: never cache them, never leak it.
    return mark_token_page(response)


def install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if wants_json(request):
            detail = exc.detail if isinstance(exc.detail, dict) else {
                "error": {"code": "http_%d" % exc.status_code, "message": str(exc.detail)}}
            return JSONResponse(detail, status_code=exc.status_code, headers=getattr(exc, "headers", None))
        return error_page(request, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        # FastAPI's own answer is a JSON list that repeats the input and has no no-store/no-referrer;
        # a malformed query on a token page gets the plain page, the API its error object (neither
        # repeats what was sent).
        if wants_json(request):
            where = ".".join(str(p)[:40] for p in (exc.errors()[0]["loc"] if exc.errors() else ())) or "request"
            return JSONResponse({"error": {"code": "invalid_request", "message": f"{where} is not valid"}},
                                status_code=422)
        return error_page(request, 400)
