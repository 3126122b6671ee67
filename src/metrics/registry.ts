/**
 * A small metrics registry that renders the Prometheus text exposition format (version 0.0.4).
 *
 * Counters and histograms are updated on the hot path, so an update is a few array operations:
 * label values are resolved once to a child object ({@link Counter.labels}) that the caller keeps,
 * and a histogram observation is one linear scan of a short bucket list. Gauges are usually read
 * at scrape time through a callback, so the state they report is never copied on the hot path.
 *
 * @module
 */

/** Label values, in the order of the metric's label names. */
type LabelValues = readonly string[];

interface Metric {
  readonly name: string;
  readonly help: string;
  render(lines: string[]): void;
}

function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

function formatLabels(names: readonly string[], values: LabelValues, extra = ""): string {
  const parts = names.map((name, i) => `${name}="${escapeLabelValue(values[i])}"`);
  if (extra !== "") parts.push(extra);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function formatNumber(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return Number.isNaN(value) ? "NaN" : String(value);
}

function checkName(name: string): void {
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) {
    throw new Error(`metric or label name "${name}" is not valid in Prometheus`);
  }
}

/** One labelled series of a counter. */
export interface CounterChild {
  /** Adds `amount` (default 1); a counter only goes up. */
  inc(amount?: number): void;
  /** The current value. */
  readonly value: number;
}

class CounterSeries implements CounterChild {
  value = 0;
  inc(amount = 1): void {
    this.value += amount;
  }
}

/** A monotonically increasing count, optionally split by labels. */
export class Counter implements Metric {
  readonly #series = new Map<string, { values: LabelValues; series: CounterSeries }>();
  constructor(readonly name: string, readonly help: string, readonly labelNames: string[] = []) {
    checkName(name);
    labelNames.forEach(checkName);
  }

  /** The series for these label values; keep it to update without a lookup. */
  labels(...values: string[]): CounterChild {
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name} takes ${this.labelNames.length} labels, got ${values.length}`);
    }
    const key = values.join("\u0000");
    let entry = this.#series.get(key);
    if (entry === undefined) {
      entry = { values, series: new CounterSeries() };
      this.#series.set(key, entry);
    }
    return entry.series;
  }

  /** Adds to the unlabelled series. */
  inc(amount = 1): void {
    this.labels().inc(amount);
  }

  render(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`);
    for (const { values, series } of this.#series.values()) {
      lines.push(`${this.name}${formatLabels(this.labelNames, values)} ${series.value}`);
    }
  }
}

/** A sample a gauge callback reports: label values and a number. */
export interface GaugeSample {
  labels?: LabelValues;
  value: number;
}

/**
 * A value read at scrape time from a callback (keys, bytes, lag per replica, ...). With type
 * `counter` it exposes a count kept elsewhere (connections accepted, replications done).
 */
export class Gauge implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: string[],
    readonly collect: () => GaugeSample[],
    readonly type: "gauge" | "counter" = "gauge",
  ) {
    checkName(name);
    labelNames.forEach(checkName);
  }

  render(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`);
    for (const sample of this.collect()) {
      const labels = formatLabels(this.labelNames, sample.labels ?? []);
      lines.push(`${this.name}${labels} ${formatNumber(sample.value)}`);
    }
  }
}

/** One labelled series of a histogram. */
export interface HistogramChild {
  /** Records one observation, in the histogram's unit (seconds for latencies). */
  observe(value: number): void;
}

class HistogramSeries implements HistogramChild {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}

/** Latency buckets in seconds, from 25 µs to 10 s. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.000025,
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  10,
];

/** Distribution of observations in fixed buckets, with their sum and count. */
export class Histogram implements Metric {
  readonly #series = new Map<string, { values: LabelValues; series: HistogramSeries }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: string[] = [],
    readonly bounds: readonly number[] = LATENCY_BUCKETS_SECONDS,
  ) {
    checkName(name);
    labelNames.forEach(checkName);
    for (let i = 1; i < bounds.length; i++) {
      if (!(bounds[i] > bounds[i - 1])) throw new Error(`${name}: buckets must increase`);
    }
  }

  /** The series for these label values; keep it to observe without a lookup. */
  labels(...values: string[]): HistogramChild {
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name} takes ${this.labelNames.length} labels, got ${values.length}`);
    }
    const key = values.join("\u0000");
    let entry = this.#series.get(key);
    if (entry === undefined) {
      entry = { values, series: new HistogramSeries(this.bounds) };
      this.#series.set(key, entry);
    }
    return entry.series;
  }

  /** Records one observation in the unlabelled series. */
  observe(value: number): void {
    this.labels().observe(value);
  }

  render(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    for (const { values, series } of this.#series.values()) {
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += series.counts[i];
        const le = i < this.bounds.length ? formatNumber(this.bounds[i]) : "+Inf";
        const labels = formatLabels(this.labelNames, values, `le="${le}"`);
        lines.push(`${this.name}_bucket${labels} ${cumulative}`);
      }
      const labels = formatLabels(this.labelNames, values);
      lines.push(`${this.name}_sum${labels} ${series.sum}`);
      lines.push(`${this.name}_count${labels} ${series.count}`);
    }
  }
}

/**
 * The metrics of one process, rendered together.
 *
 * @example
 * ```ts
 * import { Counter, Registry } from "./registry.ts";
 * const registry = new Registry();
 * const commands = registry.add(new Counter("demo_total", "Demo events.", ["kind"]));
 * commands.labels("put").inc();
 * console.log(registry.render().includes('demo_total{kind="put"} 1')); // true
 * ```
 */
export class Registry {
  readonly #metrics = new Map<string, Metric>();

  /** Registers a metric and returns it; names must be unique. */
  add<T extends Metric>(metric: T): T {
    if (this.#metrics.has(metric.name)) throw new Error(`metric ${metric.name} already exists`);
    this.#metrics.set(metric.name, metric);
    return metric;
  }

  /** The whole exposition, ending in a newline. */
  render(): string {
    const lines: string[] = [];
    for (const metric of this.#metrics.values()) metric.render(lines);
    return lines.join("\n") + "\n";
  }
}
