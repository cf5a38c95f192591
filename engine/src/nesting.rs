//! Nesting depth of a document's text, checked before it is parsed: YAML's scanner spends
//! time quadratic in the depth of nested flow collections (`[[[[…`), so a deep document is
//! refused from a linear scan of its text before any value is built. Block nesting (by
//! indentation) costs the parser nothing extra and is checked on the parsed value.

use crate::set::Format;

/// The deepest nesting of arrays and objects (sequences and mappings) a document may have.
/// IAM policies need 5 (document, `Statement` list, statement, `Condition`, operator).
pub const MAX_NESTING: usize = 64;

/// The error for a document nested deeper than [`MAX_NESTING`].
fn too_deep(line: usize) -> String {
    format!("nested deeper than {MAX_NESTING} levels (at line {line})")
}

/// Checks the nesting of a document's `text` before it is parsed: an error (to be
/// prefixed with the file) when arrays and objects nest deeper than [`MAX_NESTING`].
pub fn check_nesting(text: &str, format: Format) -> Result<(), String> {
    match format {
        Format::Json => json(text.as_bytes()),
        Format::Yaml => yaml(text.as_bytes()),
    }
}

/// Checks the nesting of a parsed value (block nesting in YAML).
pub(crate) fn check_value(v: &serde_json::Value) -> Result<(), String> {
    // Iterative: the value's depth is what is being checked.
    let mut stack: Vec<(&serde_json::Value, usize)> = vec![(v, 1)];
    while let Some((v, depth)) = stack.pop() {
        let nests = matches!(
            v,
            serde_json::Value::Array(_) | serde_json::Value::Object(_)
        );
        if nests && depth > MAX_NESTING {
            return Err(format!("nested deeper than {MAX_NESTING} levels"));
        }
        match v {
            serde_json::Value::Array(a) => stack.extend(a.iter().map(|c| (c, depth + 1))),
            serde_json::Value::Object(o) => stack.extend(o.values().map(|c| (c, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// JSON: brackets outside strings.
fn json(b: &[u8]) -> Result<(), String> {
    let mut depth = 0usize;
    let mut line = 1;
    let mut in_string = false;
    let mut escaped = false;
    for &c in b {
        if c == b'\n' {
            line += 1;
        }
        if in_string {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(too_deep(line));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// YAML: flow collections (`[`, `{`) that start where a node can start, outside quoted
/// scalars, comments and block scalars. Where the scan cannot be sure that a quote opens a
/// quoted scalar it counts on, so that it may count too deep but never too shallow.
fn yaml(b: &[u8]) -> Result<(), String> {
    let mut s = Yaml {
        b,
        i: 0,
        line: 1,
        depth: 0,
    };
    s.run()
}

struct Yaml<'a> {
    b: &'a [u8],
    i: usize,
    line: usize,
    depth: usize,
}

impl Yaml<'_> {
    fn at(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(b'\n')
    }

    fn blank(c: u8) -> bool {
        matches!(c, b' ' | b'\t' | b'\r' | b'\n')
    }

    fn open(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(too_deep(self.line));
        }
        Ok(())
    }

    /// Skips a quoted scalar whose opening quote is at `self.i`.
    fn quoted(&mut self) {
        let q = self.at(self.i);
        self.i += 1;
        while self.i < self.b.len() {
            let c = self.at(self.i);
            if c == b'\n' {
                self.line += 1;
            }
            if q == b'"' && c == b'\\' {
                self.i += 2;
                continue;
            }
            if c == q {
                if q == b'\'' && self.at(self.i + 1) == b'\'' {
                    self.i += 2;
                    continue;
                }
                self.i += 1;
                return;
            }
            self.i += 1;
        }
    }

    /// Skips to the end of the line (not past the newline).
    fn skip_line(&mut self) {
        while self.i < self.b.len() && self.at(self.i) != b'\n' {
            self.i += 1;
        }
    }

    /// The indentation of the line starting at `i`, and whether it holds only blanks.
    fn indent_at(&self, i: usize) -> (usize, bool) {
        let mut j = i;
        while self.at(j) == b' ' {
            j += 1;
        }
        let rest_blank = {
            let mut k = j;
            while matches!(self.at(k), b' ' | b'\t' | b'\r') {
                k += 1;
            }
            self.at(k) == b'\n'
        };
        (j - i, rest_blank)
    }

    /// Skips the content lines of a block scalar whose header ends the current line; the
    /// header's line is indented by `parent`. `self.i` is at the newline ending the header.
    fn block_scalar(&mut self, parent: usize) {
        let mut content: Option<usize> = None;
        while self.i < self.b.len() {
            // At a newline: look at the next line.
            let start = self.i + 1;
            if start >= self.b.len() {
                return;
            }
            let (indent, blank) = self.indent_at(start);
            let inside = blank
                || match content {
                    Some(c) => indent >= c,
                    None if indent > parent => {
                        content = Some(indent);
                        true
                    }
                    None => false,
                };
            if !inside {
                return;
            }
            self.i = start;
            self.line += 1;
            self.skip_line();
        }
    }

    fn run(&mut self) -> Result<(), String> {
        // Whether a node may start here (so a quote opens a quoted scalar and a bracket a
        // flow collection); whether a plain scalar is being read; the current line's
        // indentation.
        let mut node = true;
        let mut plain = false;
        let mut indent = 0usize;
        let mut line_start = true;
        while self.i < self.b.len() {
            if line_start {
                line_start = false;
                let (n, blank) = self.indent_at(self.i);
                if !blank && self.depth == 0 {
                    // A more indented line continues a plain scalar of the line before
                    // (so a quote on it is text); otherwise a node may start.
                    if !(plain && n > indent) {
                        node = true;
                        plain = false;
                    }
                    indent = n;
                }
                self.i += n;
                continue;
            }
            let c = self.at(self.i);
            let next = self.at(self.i + 1);
            let prev_blank = self.i == 0 || Self::blank(self.at(self.i - 1));
            match c {
                b'\n' => {
                    self.line += 1;
                    line_start = true;
                }
                b' ' | b'\t' | b'\r' => {}
                b'#' if prev_blank => {
                    self.skip_line();
                    continue;
                }
                b'\'' | b'"' if node => {
                    self.quoted();
                    node = false;
                    plain = false;
                    continue;
                }
                b'[' | b'{' if node || self.depth > 0 => {
                    self.open()?;
                    node = true;
                    plain = false;
                }
                b']' | b'}' if self.depth > 0 => {
                    self.depth -= 1;
                    node = false;
                    plain = false;
                }
                b',' if self.depth > 0 => {
                    node = true;
                    plain = false;
                }
                // Indicators followed by a blank (or, in flow, by a flow indicator).
                b'-' | b'?' | b':'
                    if Self::blank(next)
                        || (self.depth > 0
                            && c == b':'
                            && matches!(next, b',' | b'[' | b']' | b'{' | b'}')) =>
                {
                    node = true;
                    plain = false;
                }
                // JSON-like flow mappings: `{"a":"b"}`.
                b':' if self.depth > 0 && !plain => node = true,
                b'|' | b'>' if node && self.depth == 0 => {
                    self.skip_line();
                    self.block_scalar(indent);
                    node = true;
                    plain = false;
                    continue;
                }
                // Anchors, tags and aliases: a node may still start after them.
                // (Stopping at flow indicators: a bracket is counted rather than skipped.)
                b'&' | b'!' | b'*' if node => {
                    while self.i < self.b.len()
                        && !Self::blank(self.at(self.i))
                        && !matches!(self.at(self.i), b',' | b'[' | b']' | b'{' | b'}')
                    {
                        self.i += 1;
                    }
                    continue;
                }
                _ => {
                    if node {
                        plain = true;
                        node = false;
                    }
                }
            }
            self.i += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{check_nesting as check_text, MAX_NESTING};
    use crate::set::Format;

    fn nested(open: &str, close: &str, n: usize) -> String {
        format!("{}{}", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn json_nesting_is_bounded_outside_strings() {
        let ok = format!(r#"{{"a": {}}}"#, nested("[", "]", MAX_NESTING - 1));
        assert_eq!(check_text(&ok, Format::Json), Ok(()));
        let deep = format!(r#"{{"a": {}}}"#, nested("[", "]", MAX_NESTING));
        assert!(check_text(&deep, Format::Json).is_err());
        let in_string = format!(r#"{{"a": "{}\"[["}}"#, "[".repeat(1000));
        assert_eq!(check_text(&in_string, Format::Json), Ok(()));
    }

    #[test]
    fn yaml_flow_nesting_is_bounded() {
        let ok = format!("Statement: {}\n", nested("[", "]", MAX_NESTING));
        assert_eq!(check_text(&ok, Format::Yaml), Ok(()));
        let deep = format!("Statement: {}\n", nested("[", "]", MAX_NESTING + 1));
        assert!(check_text(&deep, Format::Yaml)
            .is_err_and(|e| e.contains("nested deeper than 64") && e.contains("line 1")));
        let maps = format!("a:\n  - {}\n", nested("{a: ", "}", 100));
        assert!(check_text(&maps, Format::Yaml).is_err());
    }

    #[test]
    fn yaml_brackets_in_scalars_and_comments_do_not_count() {
        let deep = "[".repeat(200);
        for text in [
            format!("a: '{deep}'\n"),
            format!("a: \"{deep}\\\"\"\n"),
            format!("a: x{deep}\n"),
            format!("a: 1 # {deep}\n"),
            format!("a: |\n  {deep}\n  ' {deep}\nb: ok\n"),
            format!("a: >-\n    text\n\n    {deep}\nb: [x]\n"),
            format!("a: it's {deep}\n"),
            format!("a: {{\"k\":'{deep}'}}\n"),
        ] {
            assert_eq!(check_text(&text, Format::Yaml), Ok(()), "{text}");
        }
    }

    #[test]
    fn yaml_quotes_that_open_no_scalar_do_not_hide_brackets() {
        let deep = nested("[", "]", 100);
        for text in [
            format!("a: it's\nb: {deep}\n"),
            format!("a: x 'y\nb: {deep}\n"),
            format!("a: |\n  'text\nb: {deep}\n"),
            format!("- a: |\n    'text\n  b: {deep}\n"),
            format!("a: [x 'y, {deep}]\n"),
        ] {
            assert!(check_text(&text, Format::Yaml).is_err(), "{text}");
        }
    }

    #[test]
    fn a_deeply_nested_document_is_refused_quickly() {
        let text = format!("Statement: {}\n", nested("[", "]", 500_000));
        let started = std::time::Instant::now();
        assert!(check_text(&text, Format::Yaml).is_err());
        assert!(check_text(&text.replace("Statement: ", "{\"a\":"), Format::Json).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
