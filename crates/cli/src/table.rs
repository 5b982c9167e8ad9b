//! vpncmd's table output: the column view (`CtPrint`), the vertical Item|Value view
//! (`CtPrintStandard`) and CSV (`CtPrintCsv`).

/// Console width vpncmd assumes; separator lines are cut to one less.
const CONSOLE_WIDTH: usize = 80;

/// A table of text cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headings.
    pub fn new(columns: &[&str]) -> Self {
        Self {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// The two-column `Item`/`Value` table.
    pub fn standard() -> Self {
        Self::new(&["Item", "Value"])
    }

    /// Add a row (missing cells are empty).
    pub fn row<S: AsRef<str>>(&mut self, cells: &[S]) {
        let mut r: Vec<String> = cells.iter().map(|c| c.as_ref().to_string()).collect();
        r.resize(self.columns.len(), String::new());
        self.rows.push(r);
    }

    /// The column view.
    pub fn render(&self) -> String {
        let n = self.columns.len();
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                if c != "---" {
                    widths[i] = widths[i].max(c.chars().count());
                }
            }
        }
        let mut out = String::new();
        out.push_str(&line(&widths, &self.columns, '|'));
        let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&line(&widths, &dashes, '+'));
        for r in &self.rows {
            out.push_str(&line(&widths, r, '|'));
        }
        out
    }

    /// The vertical view: every row becomes `column|cell` lines, rows split by `---`.
    pub fn render_vertical(&self) -> String {
        let mut t = Table::standard();
        for (i, r) in self.rows.iter().enumerate() {
            for (c, v) in self.columns.iter().zip(r) {
                t.row(&[c.as_str(), v.as_str()]);
            }
            if i + 1 != self.rows.len() {
                t.row(&["---", "---"]);
            }
        }
        t.render()
    }

    /// CSV with vpncmd's quoting (only cells holding `,`, `"` or a newline are quoted).
    pub fn render_csv(&self) -> String {
        let mut out = String::new();
        for r in std::iter::once(&self.columns).chain(self.rows.iter()) {
            let cells: Vec<String> = r.iter().map(|c| csv_escape(c)).collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        out
    }
}

fn csv_escape(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn line(widths: &[usize], cells: &[String], sep: char) -> String {
    let mut buf = String::new();
    let mut all_sep = true;
    for (i, w) in widths.iter().enumerate() {
        let raw = cells.get(i).map(String::as_str).unwrap_or("");
        let cell = if raw == "---" {
            "-".repeat(*w)
        } else {
            raw.to_string()
        };
        if raw != "---" {
            all_sep = false;
        }
        buf.push_str(&cell);
        buf.push_str(&" ".repeat(w.saturating_sub(cell.chars().count())));
        if i + 1 < widths.len() {
            buf.push(if raw == "---" { '+' } else { sep });
        }
    }
    let mut s = buf.trim_end().to_string();
    if all_sep && s.chars().count() > CONSOLE_WIDTH - 1 {
        s = s.chars().take(CONSOLE_WIDTH - 1).collect();
    }
    s.push('\n');
    s
}

/// vpncmd's number format: thousands separated by commas.
pub fn num(n: u64) -> String {
    let digits = n.to_string();
    let first = match digits.len() % 3 {
        0 => 3,
        r => r,
    };
    let mut out = digits[..first].to_string();
    for chunk in digits.as_bytes()[first..].chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
    }
    out
}
