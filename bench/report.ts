/**
 * The benchmark report: a markdown table with every ratio and its target, a
 * line describing the machine, and an SVG bar chart of the ratios (written as
 * text, no browser needed).
 */
import type { BenchResult, BenchRow } from './types.ts';
import type { MachineInfo } from './lib/procs.ts';

export interface BenchReport {
  startedAt: string;
  durationSeconds: number;
  machine: MachineInfo;
  /** 1-minute load average before the run and after it (other work on the machine skews the figures). */
  load: { before: number; after: number };
  results: (BenchResult & { error?: string })[];
}

/** Whether a row meets its target; undefined when it has none. */
export function met(row: BenchRow): boolean | undefined {
  if (row.goal) return row.goal.met;
  if (row.target === undefined) return undefined;
  return row.ratio >= row.target;
}

function targetText(row: BenchRow): string {
  if (row.goal) return row.goal.text;
  if (row.target === undefined) return '';
  return `≥ ${row.target}`;
}

const fmt = (n: number) => (Number.isInteger(n) ? n.toLocaleString('en-US') : String(n));

export function machineLine(m: MachineInfo): string {
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM, Linux ${m.kernel}; Node ${m.node}, Redis ${m.redis}, PostgreSQL ${m.postgres}. Servers pinned to core 0, load generators to core 1 (taskset); Redis and PostgreSQL unpinned on the same machine.`;
}

export function toMarkdown(report: BenchReport): string {
  const lines: string[] = [];
  lines.push(`Machine: ${machineLine(report.machine)}`);
  lines.push('');
  lines.push(`Run: ${report.startedAt}, ${report.durationSeconds} s; load average ${report.load.before} before, ${report.load.after} after.`);
  lines.push('');
  lines.push('| Scenario | Measure | pinroom | Baseline | Baseline value | Ratio | Target | Met | CPU server / client % |');
  lines.push('|---|---|---:|---|---:|---:|---|---|---|');
  for (const result of report.results) {
    if (result.error) {
      lines.push(`| ${result.scenario} | failed: ${result.error.replace(/\|/g, '/').slice(0, 200)} | | | | | | ✗ | |`);
      continue;
    }
    for (const row of result.rows) {
      const ok = met(row);
      const cpu = row.cpu ? `${row.cpu.server ?? '–'} / ${row.cpu.client ?? '–'}` : '';
      const ratio = `${row.ratio}${row.lowerIsBetter ? ' ↓' : ''}`;
      lines.push(
        `| ${result.scenario} | ${row.metric} (${row.unit}) | ${fmt(row.pinroom)} | ${row.baselineName} | ${fmt(row.baseline)} | ${ratio} | ${targetText(row)} | ${ok === undefined ? '' : ok ? '✓' : '✗'} | ${cpu} |`,
      );
    }
  }
  lines.push('');
  lines.push('Ratio is pinroom ÷ baseline for throughput; for rows marked ↓ (lower is better: latency, memory, queries) it is baseline ÷ pinroom, so above 1 is always better than the baseline.');
  const notes = report.results.flatMap((r) => r.rows.filter((row) => row.note).map((row) => `- ${r.scenario}, ${row.metric}: ${row.note}`));
  if (notes.length > 0) {
    lines.push('');
    lines.push('Notes:');
    lines.push(...notes);
  }
  return `${lines.join('\n')}\n`;
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Horizontal bars of every ratio (capped at 2), a line at 1.0 and a tick at each target. */
export function toSvg(report: BenchReport): string {
  const rows = report.results.flatMap((r) => r.rows.map((row) => ({ scenario: r.scenario, row })));
  const labelWidth = 520;
  const barWidth = 420;
  const rowHeight = 26;
  const top = 58;
  const max = 2;
  const width = labelWidth + barWidth + 90;
  const height = top + rows.length * rowHeight + 40;
  const x = (ratio: number) => labelWidth + (Math.min(Math.max(ratio, 0), max) / max) * barWidth;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text x="12" y="22" font-size="15" font-weight="bold">pinroom vs baselines (ratio; right of 1.0 is better than the baseline)</text>`);
  out.push(`<text x="12" y="40" fill="#555">${escapeXml(machineLine(report.machine).split(';')[0]!)}; ${escapeXml(report.startedAt)}</text>`);
  for (const tick of [0, 0.5, 1, 1.5, 2]) {
    out.push(`<line x1="${x(tick)}" y1="${top - 6}" x2="${x(tick)}" y2="${top + rows.length * rowHeight}" stroke="${tick === 1 ? '#333' : '#ddd'}" stroke-width="${tick === 1 ? 1.5 : 1}"/>`);
    out.push(`<text x="${x(tick)}" y="${top + rows.length * rowHeight + 16}" text-anchor="middle" fill="#555">${tick}${tick === max ? '+' : ''}</text>`);
  }
  rows.forEach(({ scenario, row }, i) => {
    const y = top + i * rowHeight;
    const ok = met(row);
    const color = ok === undefined ? '#8da0cb' : ok ? '#4daf4a' : '#e41a1c';
    // Two rows of one measure against different baselines are told apart by the baseline.
    const twin = rows.some((o) => o.row !== row && o.scenario === scenario && o.row.metric === row.metric);
    const metric = twin ? `vs ${row.baselineName.split(',')[0]}: ${row.metric}` : row.metric;
    const label = `${scenario}: ${metric}`;
    out.push(`<text x="${labelWidth - 8}" y="${y + 16}" text-anchor="end">${escapeXml(label.length > 82 ? `${label.slice(0, 80)}…` : label)}</text>`);
    out.push(`<rect x="${labelWidth}" y="${y + 5}" width="${Math.max(1, x(row.ratio) - labelWidth)}" height="${rowHeight - 10}" fill="${color}"/>`);
    if (row.target !== undefined) out.push(`<line x1="${x(row.target)}" y1="${y + 2}" x2="${x(row.target)}" y2="${y + rowHeight - 2}" stroke="#000" stroke-width="2"/>`);
    out.push(`<text x="${x(row.ratio) + 6}" y="${y + 16}">${row.ratio}</text>`);
  });
  out.push(`<text x="12" y="${height - 8}" fill="#555">green: target met · red: target missed (black tick) · blue: no target · ratios above ${max} are drawn at ${max}</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
