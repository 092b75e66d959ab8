//! A unified line diff of two texts, for the management API's dry runs, audit log and history.
//! Config files are small (hundreds of lines), so a plain longest-common-subsequence table over
//! the lines between the common prefix and suffix is enough; past a size where that table would
//! be large, the changed middle is shown as removed then added, which is still a correct diff.

/// Lines of context around each change.
const CONTEXT: usize = 3;
/// Largest LCS table (cells) built; bigger middles are diffed as one replacement.
const MAX_CELLS: usize = 4_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same,
    Del,
    Add,
}

/// `--- a` / `+++ b` and `@@` hunks; empty when the texts are equal.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = line_ops(&a, &b);
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    // Walk the script, emitting hunks around the changes.
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, (op, _, _))| *op != Op::Same)
        .map(|(i, _)| i)
        .collect();
    let mut k = 0;
    while let Some(&first) = changed.get(k) {
        let start = first.saturating_sub(CONTEXT);
        let mut end = first;
        // Extend the hunk while the next change is within 2 * CONTEXT lines.
        while let Some(&next) = changed.get(k + 1) {
            if next <= end + 2 * CONTEXT + 1 {
                end = next;
                k += 1;
            } else {
                break;
            }
        }
        k += 1;
        let stop = (end + CONTEXT + 1).min(ops.len());
        let slice = ops.get(start..stop).unwrap_or_default();
        let (a_start, b_start) = slice.first().map_or((0, 0), |&(_, i, j)| (i, j));
        let a_len = slice.iter().filter(|(op, _, _)| *op != Op::Add).count();
        let b_len = slice.iter().filter(|(op, _, _)| *op != Op::Del).count();
        out.push_str(&format!(
            "@@ -{},{a_len} +{},{b_len} @@\n",
            a_start + usize::from(a_len > 0),
            b_start + usize::from(b_len > 0)
        ));
        for &(op, i, j) in slice {
            let (mark, line) = match op {
                Op::Same => (' ', a.get(i)),
                Op::Del => ('-', a.get(i)),
                Op::Add => ('+', b.get(j)),
            };
            out.push(mark);
            out.push_str(line.copied().unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

/// The edit script: (op, index in a, index in b) per line, in order. For `Add`, the index in
/// `a` is where the line is inserted; for `Del`, the index in `b` likewise.
fn line_ops(a: &[&str], b: &[&str]) -> Vec<(Op, usize, usize)> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let am = &a[prefix..a.len() - suffix];
    let bm = &b[prefix..b.len() - suffix];
    let mut ops: Vec<(Op, usize, usize)> = (0..prefix).map(|i| (Op::Same, i, i)).collect();
    let (n, m) = (am.len(), bm.len());
    if (n + 1).saturating_mul(m + 1) > MAX_CELLS {
        ops.extend((0..n).map(|i| (Op::Del, prefix + i, prefix)));
        ops.extend((0..m).map(|j| (Op::Add, prefix + n, prefix + j)));
    } else {
        // lcs[i][j]: LCS length of am[i..] and bm[j..].
        let w = m + 1;
        let mut lcs = vec![0u32; (n + 1) * w];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i * w + j] = if am[i] == bm[j] {
                    lcs[(i + 1) * w + j + 1] + 1
                } else {
                    lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && am[i] == bm[j] {
                ops.push((Op::Same, prefix + i, prefix + j));
                i += 1;
                j += 1;
            } else if i < n && (j == m || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) {
                // Removals before additions, as diff(1) shows a replaced line.
                ops.push((Op::Del, prefix + i, prefix + j));
                i += 1;
            } else {
                ops.push((Op::Add, prefix + i, prefix + j));
                j += 1;
            }
        }
    }
    let (a_end, b_end) = (a.len() - suffix, b.len() - suffix);
    ops.extend((0..suffix).map(|k| (Op::Same, a_end + k, b_end + k)));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", "a", "b"), "");
    }

    #[test]
    fn a_changed_line_shows_with_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let new = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n";
        let d = unified(old, new, "old", "new");
        assert_eq!(
            d,
            "--- old\n+++ new\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn additions_and_removals_at_the_ends() {
        let d = unified("a\n", "a\nb\nc\n", "x", "y");
        assert!(d.contains("+b\n+c\n") && d.contains(" a\n"), "{d}");
        let d = unified("a\nb\n", "b\n", "x", "y");
        assert!(d.contains("-a\n") && d.contains(" b\n"), "{d}");
        let d = unified("", "a\n", "x", "y");
        assert!(d.contains("@@ -0,0 +1,1 @@\n+a\n"), "{d}");
    }
}
