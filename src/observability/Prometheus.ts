/**
 * The Prometheus text exposition format (version 0.0.4) from a snapshot of Effect metrics. Written
 * here rather than pulled in as a dependency: counters, gauges and histograms are all the bridge
 * uses, and the format for them is a few lines.
 *
 * @example
 * const text = Prometheus.format(yield* Metric.snapshot, { prefix: "smtp_bridge_" })
 */
import * as MetricKeyType from "effect/MetricKeyType"
import type * as MetricPair from "effect/MetricPair"
import * as MetricState from "effect/MetricState"

export const contentType = "text/plain; version=0.0.4; charset=utf-8"

const escapeLabel = (value: string): string => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, "\\\"")
const escapeHelp = (value: string): string => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

const number = (n: number | bigint): string => {
  if (typeof n === "bigint") return n.toString()
  if (n === Infinity) return "+Inf"
  if (n === -Infinity) return "-Inf"
  return Number.isNaN(n) ? "NaN" : String(n)
}

const labels = (pairs: ReadonlyArray<readonly [string, string]>): string =>
  pairs.length === 0 ? "" : `{${pairs.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`

interface Family {
  readonly type: "counter" | "gauge" | "histogram"
  readonly help: string
  /** One group of lines per labelled series (a histogram's buckets stay together, in order). */
  readonly series: Array<ReadonlyArray<string>>
}

const sample = (pair: MetricPair.MetricPair.Untyped, name: string): { type: Family["type"]; lines: Array<string> } | undefined => {
  const tags = [...pair.metricKey.tags]
    .map((t) => [t.key, t.value] as const)
    .sort(([a], [b]) => a.localeCompare(b))
  const state = pair.metricState
  if (MetricState.isCounterState(state)) return { type: "counter", lines: [`${name}${labels(tags)} ${number(state.count)}`] }
  if (MetricState.isGaugeState(state)) return { type: "gauge", lines: [`${name}${labels(tags)} ${number(state.value)}`] }
  if (MetricState.isHistogramState(state)) {
    const lines: Array<string> = []
    let sawInf = false
    for (const [bound, cumulative] of state.buckets) {
      sawInf ||= bound === Infinity
      lines.push(`${name}_bucket${labels([...tags, ["le", number(bound)]])} ${cumulative}`)
    }
    if (!sawInf) lines.push(`${name}_bucket${labels([...tags, ["le", "+Inf"]])} ${state.count}`)
    lines.push(`${name}_sum${labels(tags)} ${number(state.sum)}`, `${name}_count${labels(tags)} ${state.count}`)
    return { type: "histogram", lines }
  }
  // Frequencies and summaries are not used by the bridge; skipping them keeps the output valid.
  return undefined
}

/** Formats every metric whose name starts with `prefix`; families sorted by name, HELP and TYPE once each. */
export const format = (
  snapshot: ReadonlyArray<MetricPair.MetricPair.Untyped>,
  options: { readonly prefix: string }
): string => {
  const families = new Map<string, Family>()
  for (const pair of snapshot) {
    const name = pair.metricKey.name
    if (!name.startsWith(options.prefix)) continue
    const counter = MetricKeyType.isCounterKey(pair.metricKey.keyType)
    const out = sample(pair, name)
    if (out === undefined) continue
    const family = families.get(name) ?? {
      type: counter ? "counter" : out.type,
      help: pair.metricKey.description._tag === "Some" ? pair.metricKey.description.value : name,
      series: []
    }
    family.series.push(out.lines)
    families.set(name, family)
  }
  return [...families.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, f]) => `# HELP ${name} ${escapeHelp(f.help)}\n# TYPE ${name} ${f.type}\n${f.series.sort((a, b) => a[0]!.localeCompare(b[0]!)).flat().join("\n")}\n`)
    .join("")
}
