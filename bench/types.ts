/**
 * The shape every benchmark scenario returns. `npm run bench` runs each
 * scenario with its baselines side by side in the same run and reports ratios.
 */
export interface BenchRow {
  /** What is measured, e.g. "deliveries/s at saturation". */
  metric: string;
  /** Unit of `pinroom` and `baseline`, e.g. "ops/s", "ms", "bytes". */
  unit: string;
  pinroom: number;
  baseline: number;
  /** What the baseline is, e.g. "bare Socket.IO 4.8 io.to(room).emit". */
  baselineName: string;
  /** `pinroom / baseline` for throughput, `baseline / pinroom` where lower is better (set `lowerIsBetter`). */
  ratio: number;
  lowerIsBetter?: boolean;
  /** The target ratio, when the scenario has one. */
  target?: number;
  /** A target that is not a ratio (e.g. "1 query per process"), with whether it was met. */
  goal?: { text: string; met: boolean };
  /** Server and load-generator CPU use during the measurement, percent of one core. */
  cpu?: { server?: number; client?: number };
  note?: string;
}

export interface BenchResult {
  scenario: string;
  rows: BenchRow[];
}

export type Scenario = () => Promise<BenchResult>;
