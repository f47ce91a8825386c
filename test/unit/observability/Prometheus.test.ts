import { describe, expect, it } from "@effect/vitest"
import { Effect, Metric, MetricBoundaries } from "effect"
import * as Prometheus from "../../../src/observability/Prometheus.ts"

// Names unique to this file: the metric registry is shared by the whole test process.
const counter = Metric.counter("pt_test_requests_total", { description: "Requests\nserved", incremental: true })
const gauge = Metric.gauge("pt_test_open")
const histogram = Metric.histogram("pt_test_seconds", MetricBoundaries.fromIterable([0.1, 1]), "Latency")
const other = Metric.counter("other_metric_total")

describe("Prometheus.format", () => {
  it.effect("writes HELP and TYPE once per family, one line per labelled series, and escapes label values", () =>
    Effect.gen(function*() {
      yield* Metric.increment(Metric.tagged(counter, "code", "550"))
      yield* Metric.incrementBy(Metric.tagged(counter, "code", "a\"b\\c"), 2)
      yield* Metric.set(gauge, 3)
      yield* Metric.increment(other)
      const text = Prometheus.format(yield* Metric.snapshot, { prefix: "pt_test_" })
      expect(text).toContain("# HELP pt_test_requests_total Requests\\nserved\n# TYPE pt_test_requests_total counter\n")
      expect(text).toContain("pt_test_requests_total{code=\"550\"} 1\n")
      expect(text).toContain("pt_test_requests_total{code=\"a\\\"b\\\\c\"} 2\n")
      expect(text).toContain("# TYPE pt_test_open gauge\npt_test_open 3\n")
      expect(text.match(/# TYPE pt_test_requests_total/g)).toHaveLength(1)
      expect(text).not.toContain("other_metric_total")
    }))

  it.effect("writes a histogram as cumulative buckets ending in +Inf, with _sum and _count", () =>
    Effect.gen(function*() {
      for (const v of [0.05, 0.5, 5]) yield* Metric.update(Metric.tagged(histogram, "transport", "relay"), v)
      const text = Prometheus.format(yield* Metric.snapshot, { prefix: "pt_test_seconds" })
      expect(text).toBe([
        "# HELP pt_test_seconds Latency",
        "# TYPE pt_test_seconds histogram",
        "pt_test_seconds_bucket{transport=\"relay\",le=\"0.1\"} 1",
        "pt_test_seconds_bucket{transport=\"relay\",le=\"1\"} 2",
        "pt_test_seconds_bucket{transport=\"relay\",le=\"+Inf\"} 3",
        "pt_test_seconds_sum{transport=\"relay\"} 5.55",
        "pt_test_seconds_count{transport=\"relay\"} 3",
        ""
      ].join("\n"))
    }))
})
