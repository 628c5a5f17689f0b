"""sweep.md: a sweep report (`compute_report`'s dict) as Markdown: what was compared, the definitions, the
ranked table, the verdict, per-env tables (several envs) and the plots."""

from __future__ import annotations

import pathlib

from purejaxppo.sweep.scores import DEFINITIONS
from purejaxppo.sweep.values import ci_text, is_number, num, value_formatters


def _values_summary(vals: list, fmt) -> str:
    nums = [v for v in vals if is_number(v)]
    if len(vals) > 8 and len(nums) == len(vals):
        return f"{len(vals)} values in [{fmt(min(nums))}, {fmt(max(nums))}]"
    if len(vals) > 8:
        return f"{len(vals)} values"
    shown = sorted(vals) if len(nums) == len(vals) else vals
    return "{" + ", ".join(fmt(v) for v in shown) + "}"


def _intro(report: dict) -> str:
    """The opening paragraph: what was compared, on which envs, how it is ranked."""
    k, score = report["num_envs"], report["score"]
    fields = [f for f in report["varied"] if f != "env"]
    fmts = value_formatters(report["varied_values"])
    spp = report["seeds_per_setting"]
    seeds = (
        f"{next(iter(spp.values()))} seeds per setting"
        if len(set(spp.values())) == 1
        else "seeds per setting: " + ", ".join(f"{e}: {s}" for e, s in spp.items())
    )
    env_txt = ", ".join(f"`{e}`" for e in report["envs"])
    varied_txt = "; ".join(f"`{f}` ∈ {_values_summary(report['varied_values'][f], fmts[f])}" for f in fields)
    if k > 1:
        para = (
            f"This sweep compared {report['num_comparison_settings']} settings, each trained on {k} envs "
            f"({env_txt}; {report['num_settings']} env-settings in all), {seeds}. "
        )
    else:
        para = f"This sweep compared {report['num_settings']} settings on {env_txt}, {seeds}. "
    para += f"Varied: {varied_txt}." if varied_txt else "No field other than env was varied."
    para += (
        f" Settings are ranked by the IQM of the **{score}** score (ties broken by the other score's IQM)"
        + (", normalized per env and aggregated over envs" if k > 1 else "")
        + f"; intervals are {report['confidence']:.0%} percentile-bootstrap CIs over seeds ({report['reps']} resamples"
        + (", stratified per env" if k > 1 else "")
        + ")."
    )
    return para


def _definitions(report: dict) -> list[str]:
    k, score, pct = report["num_envs"], report["score"], f"{report['confidence']:.0%}"
    lines = [
        "Definitions:",
        "",
        f"- **final**: {DEFINITIONS['final']}.",
        f"- **AUC**: {DEFINITIONS['auc']}.",
        f"- **failed** run: {DEFINITIONS['failed']}; **diverged** run: {DEFINITIONS['diverged']}.",
        "- **IQM**: mean of the middle 50% of the scores (`purejaxppo.sweep.stats`).",
        f"- **P(#1 > this)**: probability that a run of #1 beats a run of this setting (ties 1/2), "
        f"{pct} bootstrap CI" + (", averaged over envs" if k > 1 else "") + ".",
        f"- **≈ #1**: this setting's {score} IQM CI overlaps #1's (not distinguishable); "
        "**overlaps**: the ranks whose IQM CIs overlap this one's.",
    ]
    if k > 1:
        norm = report["normalization"]
        if norm["method"] == "reference_scores":
            how = "with the given reference scores (lo, hi) per env: " + ", ".join(
                f"{e}: ({num(b['final'][0])}, {num(b['final'][1])})" for e, b in norm["bounds"].items()
            )
        else:
            how = (
                "with (lo, hi) = the min and max of that env's run scores over this sweep (per score kind), "
                "so 0 is the sweep's worst run and 1 its best"
            )
        lines.append(
            f"- **normalized** scores (columns marked norm.): per env (score - lo) / (hi - lo), {how}. "
            f"{DEFINITIONS['matrix'][0].upper()}{DEFINITIONS['matrix'][1:]}."
        )
    return lines


def _rank_text(e: dict) -> str:
    return str(e["rank"]) if e["rank"] is not None else "unranked"


def _table(report: dict) -> list[str]:
    """The ranked table of the comparison settings."""
    k, pct = report["num_envs"], f"{report['confidence']:.0%}"
    nrm = " (norm.)" if k > 1 else ""
    header = [
        "rank",
        "setting",
        f"final IQM{nrm} [{pct} CI]",
        f"final mean{nrm} [CI]",
        f"final median{nrm} [CI]",
        f"AUC IQM{nrm} [CI]",
        "P(#1 > this) [CI]",
        "≈ #1",
        "overlaps",
        "runs",
        "diverged / failed",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for e in report["settings"]:
        sc = e["scores"]
        pi = e["prob_improvement_of_best"]
        flag = "—" if e["rank"] == 1 or e["rank"] is None else ("yes" if e["not_distinguishable_from_best"] else "no")
        row = [
            _rank_text(e),
            f"`{e['label']}`",
            ci_text(sc and sc["final"]["iqm"]),
            ci_text(sc and sc["final"]["mean"]),
            ci_text(sc and sc["final"]["median"]),
            ci_text(sc and sc["auc"]["iqm"]),
            ci_text(pi, lambda x: f"{x:.2f}") if pi else "—",
            flag,
            ", ".join(f"#{r}" for r in e["overlapping_ranks"]) or "—",
            str(e["n_used"]) + (" × " + str(k) + " envs" if k > 1 else ""),
            f"{e['n_diverged']} / {e['n_failed']}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _per_env_tables(report: dict) -> list[str]:
    """Several envs: a table of each env's raw (not normalized) scores."""
    pct = f"{report['confidence']:.0%}"
    lines = ["Per-env raw scores (not normalized):", ""]
    for env in report["envs"]:
        lines += [
            f"**{env}**",
            "",
            f"| rank | setting | final IQM [{pct} CI] | AUC IQM [CI] | seeds | diverged / failed |",
            "|---|---|---|---|---|---|",
        ]
        for e in report["settings"]:
            pe = e["per_env"][env]
            row = [
                _rank_text(e),
                f"`{e['label']}`",
                ci_text(pe["final"] and pe["final"]["iqm"]),
                ci_text(pe["auc"] and pe["auc"]["iqm"]),
                str(pe["n_seeds"]),
                f"{pe['n_diverged']} / {pe['n_failed']}",
            ]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return lines


def render_markdown(report: dict, title: str, images: list[str], plot_note: str | None) -> str:
    """sweep.md's text: `images` are the plots' file names (relative to sweep.md); `plot_note` says why plots
    are missing, if they are."""
    lines = [f"# {title}", "", _intro(report), ""] + _definitions(report) + [""]
    if report["notes"]:
        lines += ["Notes:", ""] + [f"- {n}" for n in report["notes"]] + [""]
    lines += _table(report)
    lines += ["", f"**Verdict:** {report['verdict']}", ""]
    if report["num_envs"] > 1:
        lines += _per_env_tables(report)
    if plot_note:
        lines += [plot_note, ""]
    for img in images:
        lines += [f"![{pathlib.Path(img).stem}]({img})", ""]
    return "\n".join(lines).rstrip() + "\n"
