//! The documentation's links resolve inside the repository.
//!
//! The pages read here — `README.md`, `BENCHMARKS.md`, `web/README.md`, `infra/README.md` and
//! every `docs/**/*.md` — are what a newcomer reads first, on a clone or on a code host. A link
//! that leaves the checkout (`../shared/…`) works on one engineer's machine and nowhere else, and
//! a renamed file or heading breaks a link without anything else failing. So every relative link
//! must name a file or folder inside the repository, and every `#anchor` a heading of the page
//! it points into. Web links (`http:`, `https:`) and `mailto:` are not followed: this test runs
//! offline.
//!
//! The workspace has no Markdown parser, so this is a small scanner for what the pages use:
//! inline links and images (`[text](target)`, `![alt](target)`) and reference definitions
//! (`[label]: target`), outside fenced code blocks and code spans. Anchors are the ones GitHub
//! makes from headings: the heading's text in lower case, spaces as hyphens, punctuation other
//! than `-` and `_` dropped, and `-1`, `-2`, … on repeats.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Pages that must exist; the others are read when present.
const REQUIRED: [&str; 2] = ["README.md", "BENCHMARKS.md"];
const OPTIONAL: [&str; 2] = ["web/README.md", "infra/README.md"];
/// Read recursively, every `.md` file.
const DOCS_DIR: &str = "docs";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The pages to check, as paths relative to the repository root (with `/` separators).
fn pages() -> Vec<String> {
    let root = repo_root();
    let mut pages = Vec::new();
    for page in REQUIRED {
        assert!(root.join(page).is_file(), "{page} is missing");
        pages.push(page.to_owned());
    }
    pages.extend(
        OPTIONAL
            .iter()
            .filter(|page| root.join(page).is_file())
            .map(|page| (*page).to_owned()),
    );
    let mut docs = Vec::new();
    markdown_files_under(&root, DOCS_DIR, &mut docs);
    docs.sort();
    pages.extend(docs);
    pages
}

fn markdown_files_under(root: &Path, dir: &str, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    for entry in entries {
        let entry = entry.expect("list a docs folder");
        let name = entry.file_name().into_string().expect("UTF-8 file names");
        let path = format!("{dir}/{name}");
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            markdown_files_under(root, &path, found);
        } else if name.ends_with(".md") {
            found.push(path);
        }
    }
}

/// One link as written, and the line it is on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    line: usize,
    target: String,
}

/// What a page holds: its links, and the anchors its headings make.
#[derive(Debug, Default)]
struct Page {
    links: Vec<Link>,
    anchors: BTreeSet<String>,
}

/// Scans a Markdown page.
///
/// Fenced code blocks are skipped whole. Everything else is read in blocks (runs of non-blank
/// lines; a heading is a block of its own), because a code span may continue onto the next
/// line of its paragraph but never past it.
fn scan(text: &str) -> Page {
    let mut page = Page::default();
    let mut seen_slugs: HashMap<String, usize> = HashMap::new();
    let mut fence: Option<(char, usize)> = None;
    let mut block: Vec<(usize, &str)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let indented = line.len() - line.trim_start_matches(' ').len();
        let trimmed = line.trim_start_matches(' ');
        if let Some((fence_char, fence_len)) = fence {
            let run = trimmed.chars().take_while(|c| *c == fence_char).count();
            if indented < 4 && run >= fence_len && trimmed[run..].trim().is_empty() {
                fence = None;
            }
            continue;
        }
        if indented < 4 {
            if let Some(opening) = fence_opening(trimmed) {
                links_in_block(&block, &mut page.links);
                block.clear();
                fence = Some(opening);
                continue;
            }
            if let Some(heading) = heading_text(trimmed) {
                links_in_block(&block, &mut page.links);
                block.clear();
                links_in_block(&[(number, line)], &mut page.links);
                let slug = slug(heading);
                let repeats = seen_slugs.entry(slug.clone()).or_insert(0);
                page.anchors.insert(if *repeats == 0 {
                    slug
                } else {
                    format!("{slug}-{repeats}")
                });
                *repeats += 1;
                continue;
            }
        }
        if line.trim().is_empty() {
            links_in_block(&block, &mut page.links);
            block.clear();
        } else {
            block.push((number, line));
        }
    }
    links_in_block(&block, &mut page.links);
    // A block's reference definitions are collected after its inline links.
    page.links.sort_by_key(|link| link.line);
    page
}

/// The fence character and length of a line opening a fenced code block.
fn fence_opening(trimmed: &str) -> Option<(char, usize)> {
    let first = trimmed.chars().next()?;
    if first != '`' && first != '~' {
        return None;
    }
    let run = trimmed.chars().take_while(|c| *c == first).count();
    // A backtick fence's info string may not hold a backtick (it would be a code span).
    let info_ok = first == '~' || !trimmed[run..].contains('`');
    (run >= 3 && info_ok).then_some((first, run))
}

/// The text of an ATX heading (`## Text ##`), without its markers.
fn heading_text(trimmed: &str) -> Option<&str> {
    let level = trimmed.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &trimmed[level..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    let rest = rest.trim();
    // An optional closing sequence of `#`s, separated from the text by a space.
    let without_closing = rest.trim_end_matches('#');
    Some(
        if without_closing.is_empty() || without_closing.ends_with(' ') {
            without_closing.trim_end()
        } else {
            rest
        },
    )
}

/// GitHub's anchor for a heading: its rendered text (code spans' contents, links' texts, no
/// emphasis stars) in lower case, letters, digits, `-` and `_` kept, spaces made hyphens,
/// everything else dropped.
fn slug(heading: &str) -> String {
    let rendered = link_texts(&without_code_spans(heading, true));
    rendered
        .trim()
        .chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// `text` with each `[label](target)` replaced by its label.
fn link_texts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("](") {
        let destination = &rest[start + 2..];
        match destination_end(destination) {
            Some(end) if destination[end..].starts_with(')') => {
                let label = &rest[..start];
                match label.rfind('[') {
                    Some(open) => {
                        out.push_str(&label[..open]);
                        out.push_str(&label[open + 1..]);
                    }
                    None => out.push_str(label),
                }
                rest = &destination[end + 1..];
            }
            _ => {
                out.push_str(&rest[..start + 2]);
                rest = destination;
            }
        }
    }
    out.push_str(rest);
    out.replace('*', "")
}

/// `text` with its code spans and backslash escapes blanked out, so that nothing in them reads
/// as a link; blanking keeps every byte offset and newline, so offsets still give line
/// numbers. With `keep_contents` (a heading's text, for its anchor), code spans lose only
/// their backticks and escapes only their backslash, as when rendered. A run of backticks without a
/// closing run of the same length is literal text.
fn without_code_spans(text: &str, keep_contents: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes.get(i + 1).is_some_and(u8::is_ascii_punctuation) => {
                if keep_contents {
                    out.push(bytes[i + 1]);
                } else {
                    out.extend_from_slice(b"  ");
                }
                i += 2;
            }
            b'`' => {
                let run = backtick_run(bytes, i);
                match closing_run(bytes, i + run, run) {
                    Some(close) => {
                        if keep_contents {
                            out.extend_from_slice(&bytes[i + run..close]);
                        } else {
                            out.extend(bytes[i..close + run].iter().map(|b| match b {
                                b'\n' => b'\n',
                                _ => b' ',
                            }));
                        }
                        i = close + run;
                    }
                    None => {
                        out.extend_from_slice(&bytes[i..i + run]);
                        i += run;
                    }
                }
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    // Only ASCII bytes were replaced, and whole code spans were copied or blanked.
    String::from_utf8(out).expect("blanking keeps UTF-8")
}

fn backtick_run(bytes: &[u8], from: usize) -> usize {
    bytes[from..].iter().take_while(|b| **b == b'`').count()
}

/// Where the next run of exactly `len` backticks after `from` starts.
fn closing_run(bytes: &[u8], mut from: usize, len: usize) -> Option<usize> {
    while from < bytes.len() {
        if bytes[from] == b'`' {
            let run = backtick_run(bytes, from);
            if run == len {
                return Some(from);
            }
            from += run;
        } else {
            from += 1;
        }
    }
    None
}

/// Collects the links of one block of lines (numbered, consecutive).
fn links_in_block(block: &[(usize, &str)], links: &mut Vec<Link>) {
    let Some(&(first_line, _)) = block.first() else {
        return;
    };
    let joined = block
        .iter()
        .map(|(_, line)| *line)
        .collect::<Vec<_>>()
        .join("\n");
    let text = without_code_spans(&joined, false);
    let line_at = |offset: usize| first_line + text[..offset].matches('\n').count();

    // Inline links and images: `](` then the destination.
    let mut from = 0;
    while let Some(found) = text[from..].find("](") {
        let start = from + found + 2;
        let destination = text[start..].trim_start_matches([' ', '\t']);
        let offset = text.len() - destination.len();
        if let Some(end) = destination_end(destination) {
            links.push(Link {
                line: line_at(offset),
                target: unbracket(&destination[..end]).to_owned(),
            });
        }
        from = start;
    }

    // Reference definitions: `[label]: destination` at the start of a line.
    let mut offset = 0;
    for line in text.split('\n') {
        let trimmed = line.trim_start_matches(' ');
        if line.len() - trimmed.len() < 4 && trimmed.starts_with('[') {
            if let Some(close) = trimmed.find("]:") {
                if !trimmed[1..close].contains(['[', ']']) {
                    let destination = trimmed[close + 2..].trim_start();
                    if let Some(end) = destination_end(destination).filter(|end| *end > 0) {
                        links.push(Link {
                            line: line_at(offset),
                            target: unbracket(&destination[..end]).to_owned(),
                        });
                    }
                }
            }
        }
        offset += line.len() + 1;
    }
}

/// The length of the link destination `text` starts with: `<…>`, or up to whitespace or an
/// unbalanced `)`. `None` if it never ends (not a link after all).
fn destination_end(text: &str) -> Option<usize> {
    if let Some(inner) = text.strip_prefix('<') {
        return inner
            .find(['>', '\n'])
            .filter(|end| inner[*end..].starts_with('>'))
            .map(|end| end + 2);
    }
    let mut depth = 0_usize;
    for (index, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(index),
            ')' => depth -= 1,
            c if c.is_whitespace() => return Some(index),
            _ => {}
        }
    }
    Some(text.len())
}

fn unbracket(destination: &str) -> &str {
    destination
        .strip_prefix('<')
        .and_then(|inner| inner.strip_suffix('>'))
        .unwrap_or(destination)
}

/// `%xx` escapes decoded (a file name with a space is linked as `a%20b.md`).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a link points at, once read.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// Not followed: a web or mail address.
    External,
    /// A path inside the repository (relative to its root, `/`-separated; empty for the root
    /// itself), and the anchor after `#`, if any.
    InRepository {
        path: String,
        anchor: Option<String>,
    },
    /// Why the link can't be followed.
    Broken(String),
}

/// Resolves `target`, written in the page at `page` (relative to the repository root).
fn resolve(page: &str, target: &str) -> Target {
    let lower = target.to_ascii_lowercase();
    if ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
    {
        return Target::External;
    }
    if target.is_empty() {
        return Target::Broken("is empty".to_owned());
    }
    if target.contains("://") {
        return Target::Broken("has a scheme other than http(s) or mailto".to_owned());
    }
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(percent_decoded(anchor))),
        None => (target, None),
    };
    let path = path.split_once('?').map_or(path, |(path, _query)| path);
    let path = percent_decoded(path);
    if path.is_empty() {
        // `#anchor`: the page itself.
        return Target::InRepository {
            path: page.to_owned(),
            anchor,
        };
    }
    if path.starts_with('/') {
        return Target::Broken(
            "is an absolute path (write it relative to the page, so it works in a clone)"
                .to_owned(),
        );
    }
    let mut parts: Vec<&str> = page.split('/').collect();
    parts.pop(); // the page's own file name
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Target::Broken("escapes the repository root".to_owned());
                }
            }
            part => parts.push(part),
        }
    }
    Target::InRepository {
        path: parts.join("/"),
        anchor,
    }
}

/// Every page's links, resolved: `(page, link, target)`.
fn resolved_links() -> Vec<(String, Link, Target)> {
    let root = repo_root();
    let mut all = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(root.join(&page))
            .unwrap_or_else(|err| panic!("read {page}: {err}"));
        for link in scan(&text).links {
            let target = resolve(&page, &link.target);
            all.push((page.clone(), link, target));
        }
    }
    all
}

#[test]
fn every_relative_link_in_the_docs_names_a_file_or_folder_inside_the_repository() {
    let root = repo_root();
    let mut broken = Vec::new();
    let mut checked = 0;
    for (page, link, target) in resolved_links() {
        let problem = match target {
            Target::External => continue,
            Target::Broken(why) => Some(why),
            Target::InRepository { path, .. } => {
                checked += 1;
                (!root.join(&path).exists())
                    .then(|| format!("names `{path}`, which does not exist"))
            }
        };
        if let Some(problem) = problem {
            broken.push(format!("{page}:{}: ({}) {problem}", link.line, link.target));
        }
    }
    assert!(
        broken.is_empty(),
        "links in the docs that lead nowhere ({}):\n{}",
        broken.len(),
        broken.join("\n")
    );
    assert!(
        checked > 0,
        "no relative link was found: is the scanner blind?"
    );
}

#[test]
fn every_anchor_in_the_docs_names_a_heading_of_the_page_it_points_into() {
    let root = repo_root();
    let mut anchors_of: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut broken = Vec::new();
    for (page, link, target) in resolved_links() {
        let Target::InRepository {
            path,
            anchor: Some(anchor),
        } = target
        else {
            continue;
        };
        // Anchors are checked in Markdown pages only: a source file's `#L10` is the host's.
        if !path.ends_with(".md") || !root.join(&path).is_file() {
            continue;
        }
        let anchors = anchors_of.entry(path.clone()).or_insert_with(|| {
            let text = std::fs::read_to_string(root.join(&path))
                .unwrap_or_else(|err| panic!("read {path}: {err}"));
            scan(&text).anchors
        });
        if !anchors.contains(&anchor.to_lowercase()) {
            broken.push(format!(
                "{page}:{}: ({}) names no heading of {path}",
                link.line, link.target
            ));
        }
    }
    assert!(
        broken.is_empty(),
        "anchors in the docs that name no heading ({}):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn the_scanner_reads_inline_image_and_reference_links_and_nothing_in_code() {
    let page = scan(concat!(
        "See [the design](docs/architecture.md) and ![a picture](web/docs/a%20b.png \"title\").\n",
        "A link [across\nlines](docs/x.md#part) and one in <angle brackets>: [x](<docs/y z.md>).\n",
        "\n",
        "`a code span with [no](link.md)` and ``a `longer` one [no](link.md)``; a code span\n",
        "over two `lines [no](link.md)\n",
        "still code` here, then [yes](after.md).\n",
        "\n",
        "```sh\n",
        "echo '[not](a-link.md)'\n",
        "```\n",
        "~~~~\n",
        "[not](either.md)\n",
        "```\n",
        "~~~~\n",
        "[ref]: docs/ref.md \"Title\"\n",
        "An escaped \\[bracket\\](no.md) and a [balanced](a_(b).md).\n",
    ));
    let targets: Vec<(usize, &str)> = page
        .links
        .iter()
        .map(|link| (link.line, link.target.as_str()))
        .collect();
    assert_eq!(
        targets,
        [
            (1, "docs/architecture.md"),
            (1, "web/docs/a%20b.png"),
            (3, "docs/x.md#part"),
            (3, "docs/y z.md"),
            (7, "after.md"),
            (16, "docs/ref.md"),
            (17, "a_(b).md"),
        ]
    );
}

#[test]
fn headings_give_the_anchors_github_gives_them() {
    let page = scan(concat!(
        "# Casebook\n",
        "## The two commands\n",
        "## Sign-up and people (Cognito) ##\n",
        "### `casebook-replay`: for auditors & data teams\n",
        "## Reading the log — in order, [gap-safe](log.md)\n",
        "## Tests\n",
        "## Tests\n",
        "```\n",
        "# not a heading\n",
        "```\n",
        "#not a heading either\n",
    ));
    let expected: BTreeSet<String> = [
        "casebook",
        "the-two-commands",
        "sign-up-and-people-cognito",
        "casebook-replay-for-auditors--data-teams",
        "reading-the-log--in-order-gap-safe",
        "tests",
        "tests-1",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(page.anchors, expected);
}

#[test]
fn links_resolve_against_their_page_and_never_above_the_root() {
    assert_eq!(
        resolve("docs/decisions/0001-x.md", "../architecture.md#the-flow"),
        Target::InRepository {
            path: "docs/architecture.md".to_owned(),
            anchor: Some("the-flow".to_owned()),
        }
    );
    assert_eq!(
        resolve("README.md", "#layout"),
        Target::InRepository {
            path: "README.md".to_owned(),
            anchor: Some("layout".to_owned()),
        }
    );
    assert_eq!(
        resolve("README.md", "docs/a%20b.md"),
        Target::InRepository {
            path: "docs/a b.md".to_owned(),
            anchor: None,
        }
    );
    assert_eq!(
        resolve("docs/architecture.md", "../"),
        Target::InRepository {
            path: String::new(),
            anchor: None,
        }
    );
    assert!(matches!(
        resolve("README.md", "../shared/ARCHITECTURE.md"),
        Target::Broken(_)
    ));
    assert!(matches!(
        resolve("docs/x.md", "../../etc/passwd"),
        Target::Broken(_)
    ));
    assert!(matches!(
        resolve("README.md", "/docs/x.md"),
        Target::Broken(_)
    ));
    assert_eq!(
        resolve("README.md", "https://example.com/x"),
        Target::External
    );
    assert_eq!(
        resolve("README.md", "mailto:a@example.com"),
        Target::External
    );
    assert!(matches!(
        resolve("README.md", "s3://bucket/key"),
        Target::Broken(_)
    ));
}
