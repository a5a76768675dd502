"""The run's report: what was sent, what was injected, what was lost, counted twice or paged."""

from __future__ import annotations

from pathlib import Path

from tests.faults.scenario import Outcome

REPORT_PATH = Path(__file__).resolve().parents[2] / "artifacts" / "faults-report.txt"


def render(out: Outcome) -> str:
    """The report of one scenario as text."""
    progress = out.progress
    lost, double = out.lost_and_double
    raised_rules = sorted({a.rule for a in out.raised})
    by_rule = {rule: sum(a.rule == rule for a in out.raised) for rule in raised_rules}
    immediate_raised = {a.condition for a in out.raised if a.rule.startswith("immediate_")}
    lines = [
        f"== fault injection: {out.scenario.name} "
        f"({'PostgreSQL' if out.scenario.postgres else 'SQLite'}, seed {out.scenario.seed}) ==",
        f"events generated      {out.generated:,} "
        f"(delivered {out.delivered:,} with duplicates, reorder window "
        f"{out.scenario.reorder_window})",
        f"client answers        accepted {progress.accepted:,}, duplicate {progress.duplicates:,}, "
        f"rejected {len(progress.rejected):,}, still spooled {progress.spooled:,}",
        f"in the event stream   {out.stream_events:,} events ({len(out.stream_identities):,} "
        f"distinct) in {out.stream_messages:,} messages",
        f"faults injected       {sum(out.injected.by_kind.values())}: "
        + ", ".join(f"{kind} ×{n}" for kind, n in sorted(out.injected.by_kind.items())),
        *(f"    {line}" for line in out.injected.log),
        f"consumers caught up   {out.caught_up} {out.backlog}",
        f"rollup figures        {out.compared_figures:,} compared, {len(out.mismatches)} differ",
        f"lost                  {lost}",
        f"double counted        {double}",
        f"alerts expected       immediate {len(out.immediate_expected)}, outbreak missing "
        f"{len(out.outbreak_missing)} {out.outbreak_missing}",
        f"alerts raised         {len(out.raised)}: {by_rule}",
        f"immediate             expected {len(out.immediate_expected)}, raised "
        f"{len(immediate_raised)}, missing {sorted(out.immediate_expected - immediate_raised)}, "
        f"unexpected {sorted(immediate_raised - out.immediate_expected)}",
        f"raised more than once {out.raised_twice}",
        f"windowed raised again {out.windowed_twice}",
        f"open missing reports  expected {sorted(out.missing_reports_expected)}, "
        f"open {dict(out.missing_reports_open)}",
        f"open missed checks    certain {sorted(out.overdue_certain)}, open "
        f"{dict(out.overdue_open)}",
        f"pages delivered       {sum(out.delivered_pages.values())} deliveries; alerts never "
        f"paged {len(out.unpaged)}, paged more than once {out.paged_twice} (at least once), "
        f"{out.paged_twice_in_effect} after dropping resends by Idempotency-Key; "
        f"webhook refused {out.webhook_refused} and slowed {out.webhook_slowed} requests; "
        f"undelivered {out.undelivered}",
        f"runtime               {out.seconds:.0f}s ("
        + ", ".join(f"{name} {seconds:.0f}s" for name, seconds in out.phases.items())
        + ")",
    ]
    return "\n".join(lines) + "\n"


def publish(text: str) -> None:
    """Print the report and append it to artifacts/faults-report.txt."""
    print(text)
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    with REPORT_PATH.open("a", encoding="utf-8") as file:
        file.write(text + "\n")
