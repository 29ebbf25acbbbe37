//! The probe suite: zero-dependency, single-file coding tasks, each with a way to run its
//! answer on this machine. The canvas physics animation comes first: it is the canonical
//! primitive the local-first claim rests on.

/// How an answer is run.
#[derive(Debug, Clone, Copy)]
pub enum Run {
    /// A Python module `solution.py`; `checks` (Python) imports it and asserts. With `own`,
    /// `python3 solution.py` must also pass (it runs the answer's own tests).
    Python { checks: &'static str, own: bool },
    /// A Python script run with `args` and `stdin`; its stdout must be `stdout`.
    PythonCli {
        args: &'static [&'static str],
        stdin: &'static str,
        stdout: &'static str,
    },
    /// One SQL query run by python3's sqlite3 on `setup`; its rows (as JSON) must be `rows`.
    Sql {
        setup: &'static str,
        rows: &'static str,
    },
    /// A Bash script run in a folder holding `files`; its stdout must be `stdout`.
    Bash {
        files: &'static [(&'static str, &'static str)],
        stdout: &'static str,
    },
    /// JavaScript run under node with `checks` appended (node's `assert` is in scope).
    Node { checks: &'static str },
    /// An HTML page rendered in headless Chromium.
    Page {
        animated_canvas: bool,
        assert_js: Option<&'static str>,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Task {
    pub name: &'static str,
    pub prompt: &'static str,
    /// Fence tags the answer's code may carry.
    pub tags: &'static [&'static str],
    pub run: Run,
}

const PY: &[&str] = &["python", "py", "python3"];
const HTML: &[&str] = &["html", "htm"];

pub const SUITE: &[Task] = &[
    Task {
        name: "canvas-physics",
        prompt: "Write a single-file HTML page (inline CSS and JavaScript, no external libraries or files) with a <canvas> that animates a side view of a ball dropped under gravity: it falls, bounces on the ground and loses some energy at each bounce. Answer with the complete page in one ```html code block.",
        tags: HTML,
        run: Run::Page {
            animated_canvas: true,
            assert_js: None,
        },
    },
    Task {
        name: "function-with-tests",
        prompt: "Write a Python function `slugify(title: str) -> str` that lowercases the title, turns every run of characters other than a-z and 0-9 into a single hyphen, and strips hyphens from both ends. Include unittest tests for it that run when the file is executed. Answer with one ```python code block.",
        tags: PY,
        run: Run::Python {
            checks: "assert slugify('Hello, World!') == 'hello-world'\nassert slugify('  A  b  ') == 'a-b'\nassert slugify('--x--') == 'x'\nassert slugify('') == ''\nassert slugify('Rust 2024 Edition') == 'rust-2024-edition'\n",
            own: true,
        },
    },
    Task {
        name: "regex",
        prompt: "Write a Python function `is_iso_date(s: str) -> bool` that uses a regular expression (the re module) to accept dates written YYYY-MM-DD with a month from 01 to 12 and a day from 01 to 31, and nothing else (no text around the date). Answer with one ```python code block.",
        tags: PY,
        run: Run::Python {
            checks: "for s in ['2024-02-29', '1999-12-31', '2000-01-01']:\n    assert is_iso_date(s) is True, s\nfor s in ['2024-13-01', '2024-1-01', 'x2024-01-01', '2024-01-32', '2024-00-10', '2024-01-01 ', '24-01-01', '']:\n    assert not is_iso_date(s), s\n",
            own: false,
        },
    },
    Task {
        name: "sql-query",
        prompt: "SQLite tables: employees(id INTEGER PRIMARY KEY, name TEXT, dept_id INTEGER, salary INTEGER) and departments(id INTEGER PRIMARY KEY, name TEXT). Write one SQL query that returns, for every department that has employees, the department name, its number of employees and their average salary rounded to an integer, as columns dept, headcount, avg_salary, ordered by dept. Answer with one ```sql code block.",
        tags: &["sql", "sqlite"],
        run: Run::Sql {
            setup: "CREATE TABLE departments(id INTEGER PRIMARY KEY, name TEXT);\nCREATE TABLE employees(id INTEGER PRIMARY KEY, name TEXT, dept_id INTEGER, salary INTEGER);\nINSERT INTO departments VALUES (1, 'Sales'), (2, 'Engineering'), (3, 'Legal');\nINSERT INTO employees VALUES (1, 'Ann', 2, 100), (2, 'Bob', 2, 122), (3, 'Cid', 1, 80), (4, 'Dee', 1, 90), (5, 'Eve', 1, 70);\n",
            rows: "[[\"Engineering\", 2, 111], [\"Sales\", 3, 80]]",
        },
    },
    Task {
        name: "cli-script",
        prompt: "Write a Python 3 command-line script that reads CSV text with a header row from standard input and prints the sum of the numeric column named by its --column argument (use argparse and the csv module). Print only the number, and print a whole number without a decimal point. Answer with one ```python code block.",
        tags: PY,
        run: Run::PythonCli {
            args: &["--column", "qty"],
            stdin: "item,qty,price\napple,3,1.5\npear,4,2\nfig,5,0.5\n",
            stdout: "12",
        },
    },
    Task {
        name: "css-layout",
        prompt: "Write a single-file HTML page (inline CSS only, no JavaScript, no external files) with a <header>, a <nav>, a <main> and a <footer>: the header across the top, the nav as a 200px wide column to the left of the main content, the footer across the bottom; use CSS grid or flexbox. Answer with one ```html code block.",
        tags: HTML,
        run: Run::Page {
            animated_canvas: false,
            assert_js: Some(
                "var q=function(s){var e=document.querySelector(s);return e&&e.getBoundingClientRect();};var h=q('header'),n=q('nav'),m=q('main'),f=q('footer');if(!h||!n||!m||!f)return {ok:false,why:'header, nav, main or footer is missing'};if(!(h.bottom<=n.top+1&&h.bottom<=m.top+1))return {ok:false,why:'the header is not above nav and main'};if(!(n.right<=m.left+1&&Math.abs(n.top-m.top)<2))return {ok:false,why:'nav is not a column left of main'};if(Math.abs(n.width-200)>12)return {ok:false,why:'nav is '+Math.round(n.width)+'px wide, not 200px'};if(f.top<Math.max(n.bottom,m.bottom)-1)return {ok:false,why:'the footer is not below nav and main'};return {ok:true};",
            ),
        },
    },
    Task {
        name: "merge-intervals",
        prompt: "Write a Python function `merge_intervals(intervals)` that takes a list of [start, end] pairs and returns the list of merged intervals, where overlapping or touching intervals are merged, sorted by start. Answer with one ```python code block.",
        tags: PY,
        run: Run::Python {
            checks: "m = lambda x: [list(i) for i in merge_intervals(x)]\nassert m([[1, 3], [2, 6], [8, 10], [15, 18]]) == [[1, 6], [8, 10], [15, 18]]\nassert m([[1, 4], [4, 5]]) == [[1, 5]]\nassert m([]) == []\nassert m([[5, 6], [1, 2]]) == [[1, 2], [5, 6]]\nassert m([[1, 10], [2, 3]]) == [[1, 10]]\n",
            own: false,
        },
    },
    Task {
        name: "grid-path",
        prompt: "Write a Python function `shortest_path(grid)` where grid is a list of strings made of '.' (open) and '#' (wall). Return the number of moves of the shortest path from the top-left cell to the bottom-right cell moving up, down, left or right through open cells, or -1 when there is none. Answer with one ```python code block.",
        tags: PY,
        run: Run::Python {
            checks: "assert shortest_path(['..', '..']) == 2\nassert shortest_path(['...', '##.', '...']) == 4\nassert shortest_path(['.#', '#.']) == -1\nassert shortest_path(['.']) == 0\nassert shortest_path(['..#.', '#...', '..#.']) == 5\n",
            own: false,
        },
    },
    Task {
        name: "js-chunk",
        prompt: "Write a JavaScript function `chunk(array, size)` that splits an array into arrays of `size` elements (the last one may be shorter) and throws a RangeError when size is not a positive integer. Plain JavaScript, no libraries. Answer with one ```javascript code block.",
        tags: &["javascript", "js"],
        run: Run::Node {
            checks: "assert.deepStrictEqual(chunk([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);\nassert.deepStrictEqual(chunk([], 3), []);\nassert.deepStrictEqual(chunk([1, 2], 5), [[1, 2]]);\nassert.throws(() => chunk([1], 0), RangeError);\nassert.throws(() => chunk([1], 1.5), RangeError);\n",
        },
    },
    Task {
        name: "bash-script",
        prompt: "Write a Bash script that prints, for every file whose name ends in .txt in the current directory, sorted by name, one line with the file name and its number of lines separated by one space (for example `notes.txt 12`). Answer with one ```bash code block.",
        tags: &["bash", "sh", "shell"],
        run: Run::Bash {
            files: &[("b.txt", "x\n"), ("a.txt", "1\n2\n3\n"), ("c.md", "no\n")],
            stdout: "a.txt 3\nb.txt 1",
        },
    },
    Task {
        name: "canvas-pendulum",
        prompt: "Write a single-file HTML page with a <canvas> animating a damped pendulum seen from the side, its angle integrated from gravity step by step; inline JavaScript only, no libraries. Answer with the complete page in one ```html code block.",
        tags: HTML,
        run: Run::Page {
            animated_canvas: true,
            assert_js: None,
        },
    },
    Task {
        name: "flatten-dict",
        prompt: "Write a Python function `flatten(d)` that flattens a nested dict into a dict of one level whose keys are the paths joined by dots, e.g. {'a': {'b': 1}, 'c': 2} -> {'a.b': 1, 'c': 2}. Lists are values and are not flattened. Answer with one ```python code block.",
        tags: PY,
        run: Run::Python {
            checks: "assert flatten({'a': {'b': 1}, 'c': 2}) == {'a.b': 1, 'c': 2}\nassert flatten({}) == {}\nassert flatten({'x': {'y': {'z': [1, 2]}}}) == {'x.y.z': [1, 2]}\nassert flatten({'k': 'v'}) == {'k': 'v'}\n",
            own: false,
        },
    },
    Task {
        name: "lru-cache",
        prompt: "Write a Python class `LRUCache` with `__init__(self, capacity)`, `get(self, key)` that returns the value or -1 when the key is absent, and `put(self, key, value)` that evicts the least recently used key when the cache grows past its capacity. Answer with one ```python code block.",
        tags: PY,
        run: Run::Python {
            checks: "c = LRUCache(2)\nc.put(1, 1)\nc.put(2, 2)\nassert c.get(1) == 1\nc.put(3, 3)\nassert c.get(2) == -1\nc.put(4, 4)\nassert c.get(1) == -1\nassert c.get(3) == 3\nassert c.get(4) == 4\n",
            own: false,
        },
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::checks::asks_page;

    #[test]
    fn the_suite_is_large_enough_and_pages_are_recognised() {
        assert!(SUITE.len() >= 12);
        assert_eq!(SUITE[0].name, "canvas-physics");
        let mut names: Vec<_> = SUITE.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SUITE.len(), "task names are unique");
        for t in SUITE {
            let page = matches!(t.run, Run::Page { .. });
            assert_eq!(asks_page(t.prompt).is_some(), page, "{}", t.name);
        }
        let css = SUITE.iter().find(|t| t.name == "css-layout").unwrap();
        assert!(
            !asks_page(css.prompt).unwrap().script,
            "no JavaScript asked for"
        );
    }
}
