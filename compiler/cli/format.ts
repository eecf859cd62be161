// Numbers as a summary line shows them.
import { formatSize } from '../config.js';

/** 70553706496 -> 70.55B, 1235814400 -> 1.24B, 151424 -> 151.4K. */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

/** 7.0897e19 -> 7.09e19 */
export function formatFlops(n: number): string {
  const [m, e] = n.toExponential(2).split('e');
  return `${m}e${Number(e)}`;
}

export const formatTokens = (n: number): string => formatSize(n);

export const formatSeconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
