"""Logging in and out: the login page, its form, the session cookie, and who the page is."""

from __future__ import annotations

from pipeline.web.auth import SESSION_DAYS
from pipeline.web.base import SESSION_COOKIE, Guarded, TooManyAttempts


def local_path(target: str | None) -> str:
    """Where to go after logging in: a path on this server only, never another site."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


class Login(Guarded):
    """GET shows the form; POST checks it and sets a signed, HttpOnly, SameSite=Strict cookie."""

    public = True

    def get(self) -> None:
        target = local_path(self.get_argument("next", None))
        if self.guard.credentials is None or self.has_session():
            self.redirect(target)
            return
        self._form(target)

    async def post(self) -> None:
        self.check_xsrf_cookie()  # a login form always comes from our page, never from a script
        target = local_path(self.get_body_argument("next", None))
        if self.guard.credentials is None:
            self.redirect(target)
            return
        user, password = self.get_body_argument("user", ""), self.get_body_argument("password", "")
        try:
            ok = await self.attempt_login(user, password)
        except TooManyAttempts as exc:
            self.set_status(429)
            self.set_header("Retry-After", str(exc.retry_after))
            self._form(target, user, f"Too many wrong passwords. Try again in {exc.retry_after} s.")
            return
        if not ok:
            self.set_status(401)
            self._form(target, user, "Wrong user name or password.")
            return
        self.set_signed_cookie(SESSION_COOKIE, self.guard.session_value(), expires_days=SESSION_DAYS,
                               httponly=True, samesite="Strict", secure=self.guard.tls)
        self.redirect(target)

    def _form(self, target: str, user: str = "", error: str | None = None) -> None:
        self.set_header("Cache-Control", "no-store")
        self.render("login.html", next_url=target, user=user, error=error)


class Logout(Guarded):
    """Ends the browser's session (POST with the page's XSRF token); Basic users just stop sending it."""

    def post(self) -> None:
        self.clear_cookie(SESSION_COOKIE, samesite="Strict", secure=self.guard.tls, httponly=True)
        self.set_header("Clear-Site-Data", '"cache"')
        self.finish({"logged_out": True})


class Session(Guarded):
    """Tells the page whether a login is in use and as whom, for its Log out button."""

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish({"login": self.guard.credentials is not None, "user": self.current_user})
