"""One submission flow for every entry point (HTTP and NATS request-reply).

authenticate → check role → decode → storage budget → rate-limit → admit and
publish → audit → charge what the events stream and the audit trail keep → answer.
The adapters only translate an :class:`Answer` to their protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zhibao_intake import metrics
from zhibao_intake.audit import AuditTrail, Caller, audit_record
from zhibao_intake.domain.rate_limit import RateLimiter
from zhibao_intake.domain.storage_budget import TokenBudgets
from zhibao_intake.submission import SubmissionRefused, SubmissionService, decode_items, http_status
from zhibao_shared.tokens import Role, Token, TokenStore, bearer_secret


@dataclass(frozen=True)
class Answer:
    """What to answer: an HTTP-style status, a JSON body and optional Retry-After."""

    status: int
    body: dict[str, Any]
    retry_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def problem(cls, status: int, detail: str, retry_after: int | None = None) -> Answer:
        """An error answer with a human-readable ``detail``."""
        return cls(status, {"detail": detail}, retry_after)


@dataclass(frozen=True)
class Limits:
    """Size limits and the Retry-After advised when NATS is unavailable."""

    max_body_bytes: int
    max_items: int
    unavailable_retry_after_s: int


class Gateway:
    """Runs submissions for the protocol adapters."""

    def __init__(
        self,
        tokens: TokenStore,
        service: SubmissionService,
        limiter: RateLimiter,
        budgets: TokenBudgets,
        audit: AuditTrail,
        limits: Limits,
    ) -> None:
        self._tokens = tokens
        self._service = service
        self._limiter = limiter
        self._budgets = budgets
        self._audit = audit
        self.limits = limits

    async def authenticate(self, authorization: str | None, caller: Caller) -> Token | Answer:
        """The reporting token, or the 401/403 answer (audited)."""
        secret = bearer_secret(authorization)
        token = self._tokens.authenticate(secret) if secret else None
        if token is None:
            answer = Answer.problem(401, "a valid bearer token is required")
            answer.headers["WWW-Authenticate"] = "Bearer"
            return await self._refused(caller, answer, "unauthenticated")
        if not token.role.permits(Role.REPORT):
            answer = Answer.problem(403, f"a {token.role} token may not report events")
            return await self._refused(Caller(caller.channel, caller.remote, token), answer, "role")
        return token

    def misdirected(self, caller: Caller) -> None:
        """Count a request whose answer would go somewhere other than a requester's inbox
        (not answered, not processed; tallied like the refusals of callers without a
        token, so a flood of them cannot flood the audit trail)."""
        metrics.SUBMISSIONS_REFUSED.labels("reply_subject").inc()
        self._audit.count_refusal(caller, 400, "reply_subject")

    async def too_large(self, caller: Caller) -> Answer:
        """The 413 answer for a body over the limit (audited)."""
        detail = f"the body exceeds {self.limits.max_body_bytes} bytes"
        return await self._refused(caller, Answer.problem(413, detail), "body_size")

    async def submit(self, caller: Caller, body: bytes, content_type: str | None) -> Answer:
        """Decode, rate-limit, admit, publish and audit one submission."""
        assert caller.token is not None
        try:
            items = decode_items(body, content_type, self.limits.max_items)
        except SubmissionRefused as exc:
            # counted on /metrics where it was refused; the trail counts it by its reason
            self._audit.count_refusal(caller, exc.status, exc.reason)
            return Answer.problem(exc.status, str(exc))
        spent = self._budgets.wait(caller.token)
        if spent:
            seconds = RateLimiter.retry_after(spent)
            detail = f"this token's daily storage budget is spent; retry in {seconds}s"
            answer = Answer.problem(429, detail, retry_after=seconds)
            return await self._refused(caller, answer, "storage_budget")
        wait = self._limiter.take(caller.token.id, len(items))
        if wait:
            seconds = RateLimiter.retry_after(wait)
            answer = Answer.problem(
                429, f"rate limit for this token exceeded; retry in {seconds}s", retry_after=seconds
            )
            return await self._refused(caller, answer, "rate_limited")
        # held for the body's size while it is published, so that concurrent requests
        # cannot all pass the check before any is charged; then settled for what was stored
        held, kept = self._budgets.hold(caller.token, len(body)), 0
        try:
            submitted = await self._service.submit(items, caller.token)
            result = submitted.result
            status = http_status(result)
            answered = result.model_dump(mode="json", exclude_none=True)
            record = audit_record(caller, answered["results"], status=status, items=items)
            kept = submitted.stored_bytes + self._audited(record, status)
        finally:
            self._budgets.settle(caller.token, held, kept)
        retry = self.limits.unavailable_retry_after_s if status == 503 else None
        return Answer(status, answered, retry)

    def _audited(self, record: dict[str, Any], status: int) -> int:
        """Append a submission's record; returns the bytes its token is charged for it:
        all of them (repeats and rejected events are kept in the trail, not in the events
        stream), none when intake could not publish (503: intake's failure, not the
        caller's doing)."""
        queued = self._audit.append(record)
        return 0 if status == 503 else queued

    async def _refused(self, caller: Caller, answer: Answer, reason: str) -> Answer:
        """Count a whole request refused; the trail gets one record per window and key
        (refusals cost the caller nothing, a token past its limits included)."""
        metrics.SUBMISSIONS_REFUSED.labels(reason).inc()
        self._audit.count_refusal(caller, answer.status, reason)
        return answer
