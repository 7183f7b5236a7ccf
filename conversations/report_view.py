"""How a report reads: the chart image, the short summary, the XLSX, and /stats' message.

The chart is drawn with matplotlib's Agg backend on a `Figure` of its own (no pyplot state), so
callers can render it on a worker thread (`asyncio.to_thread`): drawing takes a few hundred
milliseconds that must not hold up the bot's event loop. Chinese labels need a CJK font; the
`noto-cjk-sans-otc` package brings Noto Sans CJK (SIL Open Font License) with a plain
`pip install`, and it is registered with matplotlib's font manager when this module is imported.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import date

import matplotlib

matplotlib.use("Agg")  # no display: draw into memory only

import noto_cjk_sans_otc
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec
from openpyxl import Workbook

from bot.i18n import Translator
from conversations import fit
from storage.models import Stage
from storage.reports import OwnWeek, Report, SalesRow, SeverityRow

CHART_PEOPLE = 25  # salespeople drawn by name; the rest are summed up in the title
NAME_CHARS = 16  # a name on the chart's axis
CHART_TITLE = 30  # a team's name in the chart's title (wider would run off the image)
SUMMARY_PEOPLE = 5  # the most visits, named in the summary
SUMMARY_NAME = 20
DPI = 100
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

STAGE_COLOURS = {
    Stage.red.value: "#d62728",
    Stage.yellow.value: "#f2c300",
    Stage.green.value: "#7fbf3f",
    Stage.rotten.value: "#8c564b",
    None: "#b0b0b0",
}
FOLLOWUP_COLOURS = {
    "on_time": "#2ca02c",
    "late": "#ff9f1c",
    "overdue": "#d62728",
    "not_yet_due": "#c7c7c7",
}


def _register_font() -> str:
    """Add the bundled Noto Sans CJK collection to matplotlib; its Simplified Chinese face's
    family name (the collection's first face where that one is missing)."""
    path = str(noto_cjk_sans_otc.FONT_PATH)
    font_manager.fontManager.addfont(path)
    families = [f.name for f in font_manager.fontManager.ttflist if f.fname == path]
    for wanted in ("Noto Sans CJK SC", "Noto Sans SC"):
        if wanted in families:
            return wanted
    return families[0]


FONT_FAMILY = _register_font()


# ---------------------------------------------------------------------------------------------
# the chart


def _name(text: str, limit: int = NAME_CHARS) -> str:
    return fit.clip(" ".join(text.split()) or "·", limit)


def _stage_label(_: Translator, stage: str | None) -> str:
    return _(f"report.stage.{stage or 'none'}")


def render_chart(report: Report, _: Translator) -> bytes:
    """The report as one PNG: visits and follow-ups per salesperson above, the pipeline and the
    complaints below. Blocking: call it through asyncio.to_thread."""
    people = report.salespeople[:CHART_PEOPLE]
    hidden = len(report.salespeople) - len(people)
    top = max(2.2, 0.32 * len(people) + 1.2)
    figure = Figure(figsize=(11, top + 4.2), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 2, height_ratios=[top, 4.2])
    with matplotlib.rc_context({"font.family": [FONT_FAMILY, "DejaVu Sans"]}):
        figure.suptitle(title(report, _, chart=True), fontsize=13, fontfamily=FONT_FAMILY)
        _people_panels(figure, grid, report, people, hidden, _)
        _pipeline_panel(figure.add_subplot(grid[1, 0]), report, _)
        _complaints_panel(figure.add_subplot(grid[1, 1]), report, _)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _people_panels(
    figure: Figure,
    grid: GridSpec,
    report: Report,
    people: Sequence[SalesRow],
    hidden: int,
    _: Translator,
) -> None:
    visits_ax = figure.add_subplot(grid[0, 0])
    follow_ax = figure.add_subplot(grid[0, 1], sharey=visits_ax)
    names = [_name(p.name) for p in people]
    rows = list(range(len(people)))
    heading = _("report.chart.visits", total=report.visits)
    if hidden:
        heading += " " + _("report.chart.more", n=hidden)
    visits_ax.set_title(heading, fontfamily=FONT_FAMILY, fontsize=11)
    follow_ax.set_title(
        _("report.chart.followups", total=report.followups.total),
        fontfamily=FONT_FAMILY,
        fontsize=11,
        pad=20 if people else 6,  # room for the legend
    )
    if not people:
        for ax in (visits_ax, follow_ax):
            ax.text(
                0.5,
                0.5,
                _("report.chart.nobody"),
                ha="center",
                va="center",
                fontfamily=FONT_FAMILY,
                transform=ax.transAxes,
            )
            ax.set_yticks([])
        return
    counts = [p.visits for p in people]
    bars = visits_ax.barh(rows, counts, color="#1f77b4")
    visits_ax.bar_label(bars, padding=2, fontsize=8)
    visits_ax.set_yticks(rows, names, fontfamily=FONT_FAMILY, fontsize=9)
    visits_ax.invert_yaxis()
    left = [0] * len(people)
    for key, colour in FOLLOWUP_COLOURS.items():
        values = [getattr(p.followups, key) for p in people]
        bars = follow_ax.barh(
            rows, values, left=left, color=colour, label=_(f"report.followup.{key}")
        )
        follow_ax.bar_label(
            bars, labels=[str(v) if v else "" for v in values], label_type="center", fontsize=8
        )
        left = [a + b for a, b in zip(left, values, strict=True)]
    follow_ax.tick_params(axis="y", labelleft=False)
    follow_ax.legend(  # above the bars, under the title, where it hides none of them
        prop={"family": FONT_FAMILY, "size": 8},
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(FOLLOWUP_COLOURS),
        frameon=False,
    )
    for ax in (visits_ax, follow_ax):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.margins(x=0.12)


def _pipeline_panel(ax: Axes, report: Report, _: Translator) -> None:
    stages = list(report.stages)
    labels = [_stage_label(_, s) for s in stages]
    colours = [STAGE_COLOURS.get(s, "#b0b0b0") for s in stages]
    now = [report.stages[s] for s in stages]
    moved = [report.moved_into.get(s, 0) if s else 0 for s in stages]
    xs = list(range(len(stages)))
    ax.set_title(_("report.chart.pipeline"), fontfamily=FONT_FAMILY, fontsize=11)
    bars = ax.bar([x - 0.2 for x in xs], now, 0.4, color=colours, label=_("report.chart.now"))
    ax.bar_label(bars, padding=2, fontsize=8)
    moves = ax.bar(
        [x + 0.2 for x in xs],
        moved,
        0.4,
        color=colours,
        alpha=0.45,
        hatch="//",
        label=_("report.chart.moved"),
    )
    ax.bar_label(moves, padding=2, fontsize=8)
    ax.set_xticks(xs, labels, fontfamily=FONT_FAMILY, fontsize=9)
    ax.legend(prop={"family": FONT_FAMILY, "size": 8})
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.margins(y=0.15)


def _complaints_panel(ax: Axes, report: Report, _: Translator) -> None:
    rows = report.complaints
    xs = list(range(len(rows)))
    ax.set_title(_("report.chart.complaints"), fontfamily=FONT_FAMILY, fontsize=11)
    series: list[tuple[str, Callable[[SeverityRow], int], str]] = [
        ("opened", lambda r: r.opened, "#1f77b4"),
        ("closed", lambda r: r.closed, "#2ca02c"),
        ("past_due", lambda r: r.past_due, "#d62728"),
    ]
    for offset, (key, value, colour) in zip((-0.27, 0, 0.27), series, strict=True):
        bars = ax.bar(
            [x + offset for x in xs],
            [value(r) for r in rows],
            0.27,
            color=colour,
            label=_(f"report.complaints.{key}"),
        )
        ax.bar_label(bars, padding=2, fontsize=8)
    labels = [
        _(
            "report.chart.severity",
            severity=_(f"report.severity.{r.severity}"),
            hours=_hours(_, r.avg_hours),
        )
        for r in rows
    ]
    ax.set_xticks(xs, labels, fontfamily=FONT_FAMILY, fontsize=9)
    ax.legend(prop={"family": FONT_FAMILY, "size": 8})
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.margins(y=0.15)


def _hours(_: Translator, hours: float | None) -> str:
    return _("report.hours.none") if hours is None else _("report.hours", hours=f"{hours:.1f}")


# ---------------------------------------------------------------------------------------------
# the texts


def _day(day: date) -> str:
    return day.isoformat()


def scope_name(report: Report, _: Translator, limit: int = 60) -> str:
    if report.scope.name is None:
        return _("report.scope.company")
    return fit.clip(report.scope.name, limit)


def title(report: Report, _: Translator, *, chart: bool = False) -> str:
    """The report's heading (on the chart without the emoji, which the font lacks)."""
    return _(
        "report.chart.title" if chart else "report.title",
        scope=scope_name(report, _, CHART_TITLE if chart else 60),
        first=_day(report.period.first),
        last=_day(report.period.last),
    )


def summary(report: Report, _: Translator, *, people: bool = True) -> str:
    """The report in a few lines: under 1,024 units without `people` (a caption), under 4,096
    with them."""
    f = report.followups
    stages = " · ".join(
        _("report.count", label=_stage_label(_, s), n=n) for s, n in report.stages.items()
    )
    moved = " · ".join(
        _("report.count", label=_stage_label(_, s), n=n) for s, n in report.moved_into.items() if n
    )
    timing = " · ".join(
        _(
            "report.summary.timing_item",
            severity=_(f"report.severity.{r.severity}"),
            avg=_hours(_, r.avg_hours),
            max=_hours(_, r.max_hours),
        )
        for r in report.complaints
        if r.closed
    )
    lines = [
        title(report, _),
        _(
            "report.summary.customers",
            visits=report.visits,
            new=report.new_customers,
            approved=report.approved,
        ),
        _(
            "report.summary.followups",
            on_time=f.on_time,
            late=f.late,
            overdue=f.overdue,
            open=f.not_yet_due,
        ),
        _("report.summary.pipeline", stages=stages),
        _("report.summary.moved", moves=moved or _("report.none")),
        _(
            "report.summary.complaints",
            opened=report.opened,
            closed=report.closed,
            past_due=report.past_due,
            open=report.open_complaints,
        ),
        _("report.summary.timing", timing=timing or _("report.none")),
    ]
    if report.flagged:  # verified check-in: who logged on-site visits away from the customer
        flagged = [p for p in report.salespeople if p.flagged][:SUMMARY_PEOPLE]
        named = " · ".join(
            _("report.count", label=_name(p.name, SUMMARY_NAME), n=p.flagged) for p in flagged
        )
        lines.append(_("checkin.report.flagged", total=report.flagged, people=named))
    if people:
        busiest = [p for p in report.salespeople if p.visits][:SUMMARY_PEOPLE]
        if busiest:
            named = " · ".join(
                _("report.count", label=_name(p.name, SUMMARY_NAME), n=p.visits) for p in busiest
            )
            lines.append(_("report.summary.busiest", people=named))
        lines.append(_("report.summary.xlsx_hint"))
        return fit.message("\n".join(lines))
    return fit.caption("\n".join(lines))


def stats_text(week: OwnWeek, _: Translator) -> str:
    f = week.followups
    return fit.message(
        _(
            "stats.text",
            first=_day(week.period.first),
            last=_day(week.period.last),
            visits=week.visits,
            due=week.due,
            overdue=week.overdue,
            on_time=f.on_time,
            late=f.late,
            missed=f.overdue,
            complaints=week.open_complaints,
            complaints_past_due=week.complaints_past_due,
        )
    )


# ---------------------------------------------------------------------------------------------
# the XLSX


def _cell(value: object) -> object:
    """A text that a spreadsheet would run as a formula is kept as text."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _sheet_title(text: str) -> str:
    for bad in "[]:*?/\\":
        text = text.replace(bad, " ")
    return text[:31] or "Sheet"


def render_xlsx(report: Report, _: Translator) -> bytes:
    """The report's figures as a workbook: a summary sheet, then one per table. Blocking."""
    book = Workbook(write_only=True)

    def sheet(key: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        ws = book.create_sheet(_sheet_title(_(key)))
        ws.append([_cell(h) for h in header])
        for row in rows:
            ws.append([_cell(v) for v in row])

    f = report.followups
    sheet(
        "report.xlsx.summary",
        [_("report.xlsx.figure"), _("report.xlsx.value")],
        [
            [_("report.xlsx.scope"), scope_name(report, _)],
            [_("report.xlsx.first"), report.period.first],
            [_("report.xlsx.last"), report.period.last],
            [_("report.xlsx.visits"), report.visits],
            [_("report.xlsx.new"), report.new_customers],
            [_("report.xlsx.approved"), report.approved],
            [_("report.followup.on_time"), f.on_time],
            [_("report.followup.late"), f.late],
            [_("report.followup.overdue"), f.overdue],
            [_("report.followup.not_yet_due"), f.not_yet_due],
            [_("report.xlsx.open_complaints"), report.open_complaints],
        ],
    )
    sheet(
        "report.xlsx.salespeople",
        [
            _("report.xlsx.salesperson"),
            _("report.xlsx.visits"),
            _("report.followup.on_time"),
            _("report.followup.late"),
            _("report.followup.overdue"),
            _("report.followup.not_yet_due"),
            _("checkin.report.column"),
        ],
        [
            [
                p.name,
                p.visits,
                p.followups.on_time,
                p.followups.late,
                p.followups.overdue,
                p.followups.not_yet_due,
                p.flagged,
            ]
            for p in report.salespeople
        ],
    )
    sheet(
        "report.xlsx.pipeline",
        [_("report.xlsx.stage"), _("report.chart.now"), _("report.chart.moved")],
        [
            [_stage_label(_, s), n, report.moved_into.get(s, 0) if s else 0]
            for s, n in report.stages.items()
        ],
    )
    sheet(
        "report.xlsx.complaints",
        [
            _("report.xlsx.severity"),
            _("report.complaints.opened"),
            _("report.complaints.closed"),
            _("report.complaints.past_due"),
            _("report.xlsx.avg_hours"),
            _("report.xlsx.max_hours"),
        ],
        [
            [
                _(f"report.severity.{r.severity}"),
                r.opened,
                r.closed,
                r.past_due,
                None if r.avg_hours is None else round(r.avg_hours, 2),
                None if r.max_hours is None else round(r.max_hours, 2),
            ]
            for r in report.complaints
        ],
    )
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def xlsx_name(report: Report) -> str:
    p = report.period
    return f"report-{p.first:%Y%m%d}-{p.last:%Y%m%d}.xlsx"
