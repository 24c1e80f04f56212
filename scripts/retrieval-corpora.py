#!/usr/bin/env python3
"""Build the two retrieval-evaluation corpora from public text on this machine.

    scripts/retrieval-corpora.py OUT_DIR            # both corpora
    scripts/retrieval-corpora.py OUT_DIR --only debian

Writes, per corpus, OUT_DIR/<corpus>/docs/*.md (the folder `troupe context scan` reads),
OUT_DIR/<corpus>/queries.jsonl (one known-item query per line) and
OUT_DIR/<corpus>/MANIFEST.json (where the text came from, with hashes, and the counts).
Nobody on the project wrote any of this text, and nothing is tuned to it: the selection
is by a hash of the item's name.

debian  — Debian 12 (bookworm) main: the long descriptions of packages (from the
          archive's Translation-en, fetched with `apt-get update` into a private lists
          folder, so the system's apt state is untouched). The query is the package's
          one-line summary; the document is `<package>.md` holding the long description.
          One package per source package, so that no two documents share a description.
          The text is under the licences of the packages it describes: it is generated
          here, not committed.
pydoc   — the Python standard library of the interpreter running this script: one
          document per module (`<module>.md`, pydoc's plain-text page of the module —
          its docstring and the documentation of its classes and functions — without the
          module's summary line and file paths), and the query is the first line of the
          module's docstring.

Every query has one relevant document (grade 1). A query is "hard" (paraphrase-like)
when at most half of its content words (lowercased, stop words removed, a crude
suffix stem) occur anywhere in its document, file name included: BM25 has little to
match, so only meaning can find it.
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

DOCS_PER_CORPUS = 600
QUERIES_PER_CORPUS = 400
HARD_OVERLAP = 1 / 2
MAX_DOC_BYTES = 24 * 1024

STOP = set(
    """a an the and or of to in on for with by from at as is are be been being it its this
    that these those into over under than then so such not no nor but if via per using use
    used uses your you we our can may will shall should would could which who whom whose
    what when where why how all any each other some more most also only very just about
    between through during without within based like one two many much new support
    supports provides provide providing set module package library tool tools program
    programs utility utilities files file data python3 python""".split()
)


def words(text):
    out = []
    for w in re.findall(r"[A-Za-z0-9]+", text.lower()):
        if w in STOP or len(w) < 2:
            continue
        for suffix in ("ing", "ed", "es", "s", "ly"):
            if len(w) > len(suffix) + 3 and w.endswith(suffix):
                w = w[: -len(suffix)]
                break
        out.append(w)
    return out


def overlap(query, doc_text):
    q = set(words(query))
    if not q:
        return 1.0
    d = set(words(doc_text))
    return len(q & d) / len(q)


def order_key(name):
    return hashlib.sha256(name.encode()).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_corpus(out, name, docs, queries, manifest):
    """docs: [(file name, text)], queries: [(query id, query, file name)]."""
    root = os.path.join(out, name)
    docs_dir = os.path.join(root, "docs")
    os.makedirs(docs_dir, exist_ok=True)
    for f in os.listdir(docs_dir):
        os.remove(os.path.join(docs_dir, f))
    texts = {}
    for fname, text in docs:
        with open(os.path.join(docs_dir, fname), "w", encoding="utf-8") as f:
            f.write(text)
        texts[fname] = text
    hard = 0
    with open(os.path.join(root, "queries.jsonl"), "w", encoding="utf-8") as f:
        for qid, query, fname in queries:
            ov = overlap(query, fname + "\n" + texts[fname])
            is_hard = ov <= HARD_OVERLAP + 1e-9
            hard += is_hard
            f.write(
                json.dumps(
                    {
                        "id": qid,
                        "query": query,
                        "relevant": {fname: 1},
                        "overlap": round(ov, 3),
                        "hard": is_hard,
                    }
                )
                + "\n"
            )
    manifest.update(
        {
            "corpus": name,
            "documents": len(docs),
            "queries": len(queries),
            "hard_queries": hard,
            "hard_rule": f"at most {HARD_OVERLAP:.3f} of the query's content words occur in its document",
            "document_bytes": sum(len(t.encode()) for _, t in docs),
        }
    )
    with open(os.path.join(root, "MANIFEST.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"{name}: {len(docs)} documents, {len(queries)} queries ({hard} hard) in {root}")


# --- Debian ----------------------------------------------------------------------------


def apt_lists():
    lists = os.path.join(tempfile.gettempdir(), "troupe-retrieval-apt")
    os.makedirs(os.path.join(lists, "lists", "partial"), exist_ok=True)
    os.makedirs(os.path.join(lists, "parts"), exist_ok=True)
    sources = os.path.join(lists, "sources.list")
    with open(sources, "w") as f:
        f.write(
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
            "http://deb.debian.org/debian bookworm main\n"
        )
    lists_dir = os.path.join(lists, "lists")
    have = [f for f in os.listdir(lists_dir) if "Translation-en" in f]
    if not have:
        subprocess.run(
            [
                "apt-get",
                "update",
                "-qq",
                "-o", f"Dir::State::Lists={lists_dir}",
                "-o", "Acquire::Languages=en",
                "-o", f"Dir::Etc::SourceList={sources}",
                "-o", f"Dir::Etc::SourceParts={os.path.join(lists, 'parts')}",
            ],
            check=True,
        )
    return lists_dir


def cat(path):
    return subprocess.run(
        ["/usr/lib/apt/apt-helper", "cat-file", path], check=True, capture_output=True
    ).stdout.decode("utf-8", "replace")


def stanzas(text):
    for block in text.split("\n\n"):
        fields = {}
        key = None
        for line in block.split("\n"):
            if not line:
                continue
            if line[0] in " \t" and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def long_description(raw):
    paras, cur = [], []
    for line in raw.split("\n")[1:]:
        line = line[1:] if line.startswith(" ") else line
        if line.strip() == ".":
            paras.append(" ".join(cur))
            cur = []
        else:
            cur.append(line.strip())
    if cur:
        paras.append(" ".join(cur))
    return "\n\n".join(p for p in paras if p.strip())


def debian(out):
    lists = apt_lists()
    files = sorted(os.listdir(lists))
    packages = next(f for f in files if f.endswith("binary-amd64_Packages.lz4"))
    translation = next(f for f in files if "Translation-en" in f)
    release = next(f for f in files if f.endswith("InRelease"))
    source_of = {}
    for s in stanzas(cat(os.path.join(lists, packages))):
        src = s.get("Source", s["Package"]).split(" ")[0]
        source_of[s["Package"]] = src
    candidates = []
    for s in stanzas(cat(os.path.join(lists, translation))):
        pkg = s.get("Package")
        raw = s.get("Description-en", "")
        if not pkg or pkg not in source_of:
            continue
        summary = raw.split("\n")[0].strip()
        body = long_description(raw)
        n = len(body.split())
        if len(summary.split()) < 3 or not 40 <= n <= 600:
            continue
        if re.search(r"(-dbg|-dbgsym|-doc|-dev|-data|-common)$", pkg):
            continue
        candidates.append((order_key(pkg), pkg, summary, body))
    candidates.sort()
    seen_src, seen_summary, seen_body = set(), set(), set()
    chosen = []
    summary_count = {}
    for _, _, summary, _ in candidates:
        summary_count[summary.lower()] = summary_count.get(summary.lower(), 0) + 1
    for _, pkg, summary, body in candidates:
        src = source_of[pkg]
        key = body.lower()[:300]
        if src in seen_src or key in seen_body or summary_count[summary.lower()] > 1:
            continue
        seen_src.add(src)
        seen_body.add(key)
        seen_summary.add(summary.lower())
        chosen.append((pkg, summary, body))
        if len(chosen) == DOCS_PER_CORPUS:
            break
    docs = [(f"{pkg}.md", f"# {pkg}\n\n{body}\n") for pkg, _, body in chosen]
    queries = [
        (f"debian-{pkg}", summary, f"{pkg}.md") for pkg, summary, _ in chosen[:QUERIES_PER_CORPUS]
    ]
    release_date = ""
    for line in open(os.path.join(lists, release), encoding="utf-8", errors="replace"):
        if line.startswith("Date:"):
            release_date = line.split(":", 1)[1].strip()
            break
    manifest = {
        "source": "Debian 12 bookworm main, Translation-en long descriptions, one-line summaries as queries",
        "release_date": release_date,
        "translation_sha256": sha256_file(os.path.join(lists, translation)),
        "packages_sha256": sha256_file(os.path.join(lists, packages)),
        "licence": "each description is under the licence of its package; generated, not committed",
    }
    write_corpus(out, "debian", docs, queries, manifest)


# --- Python standard library -------------------------------------------------------------

SKIP_MODULES = re.compile(
    r"^(antigravity|this|idlelib|tkinter|turtle|turtledemo|test|lib2to3\.tests|__main__|"
    r"__phello__|__hello__|_.*|.*\._.*|xx.*|ensurepip|venv|pydoc_data|distutils\.command|"
    r"encodings\..*|msilib|winreg|winsound|_winapi|nt|lib2to3\.fixes)(\..*)?$"
)


def stdlib_modules():
    import pkgutil

    names = set()
    for top in sorted(sys.stdlib_module_names):
        if SKIP_MODULES.match(top):
            continue
        names.add(top)
        try:
            mod = __import__(top)
        except Exception:
            continue
        path = getattr(mod, "__path__", None)
        if path:
            for info in pkgutil.walk_packages(path, top + ".", onerror=lambda _: None):
                if not SKIP_MODULES.match(info.name):
                    names.add(info.name)
    return sorted(names)


def pydoc_page(name):
    import importlib
    import inspect
    import pydoc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            mod = importlib.import_module(name)
        except BaseException:
            return None
    doc = inspect.getdoc(mod) or ""
    lines = doc.strip().split("\n")
    summary = lines[0].strip() if lines else ""
    if len(summary.split()) < 4 or summary.endswith(":"):
        return None
    try:
        page = pydoc.plaintext.document(mod)
    except BaseException:
        return None
    page = re.sub(r"\x08.", "", page)
    # The summary line is the query: out of the document. File paths and the reference URL
    # say nothing about the module's subject.
    page = page.replace(summary, "")
    page = re.sub(r"\nFILE\n.*?(\n\n|$)", "\n\n", page, flags=re.S)
    page = re.sub(r"\nMODULE REFERENCE\n.*?(\n\n[A-Z]|$)", r"\n\n\1", page, flags=re.S)
    page = re.sub(r"/\S*python3\.\d+\S*", "", page)
    page = page.encode()[:MAX_DOC_BYTES].decode("utf-8", "ignore")
    if len(page.split()) < 30:
        return None
    return summary, page


def pydoc_corpus(out):
    items = []
    for name in stdlib_modules():
        got = pydoc_page(name)
        if got:
            items.append((order_key(name), name, got[0], got[1]))
    items.sort()
    # A query that is a line of another document is not a known-item query.
    chosen, seen = [], set()
    for _, name, summary, page in items:
        if summary.lower() in seen:
            continue
        seen.add(summary.lower())
        chosen.append((name, summary, page))
        if len(chosen) == DOCS_PER_CORPUS:
            break
    pages = [p for _, _, p in chosen]
    docs = [(f"{name}.md", page) for name, _, page in chosen]
    queries = []
    for i, (name, summary, _) in enumerate(chosen):
        if len(queries) == QUERIES_PER_CORPUS:
            break
        if any(summary in p for j, p in enumerate(pages) if j != i):
            continue
        queries.append((f"pydoc-{name}", summary, f"{name}.md"))
    manifest = {
        "source": f"Python {sys.version.split()[0]} standard library, pydoc plain-text pages, "
        "module docstring first lines as queries",
        "python": sys.version,
        "licence": "Python Software Foundation License (the docstrings); generated, not committed",
    }
    write_corpus(out, "pydoc", docs, queries, manifest)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--only", choices=["debian", "pydoc"])
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.only in (None, "debian"):
        debian(args.out)
    if args.only in (None, "pydoc"):
        # Importing the whole standard library prints and warns here and there.
        with open(os.devnull, "w") as null:
            stdout = sys.stdout
            sys.stdout = null
            try:
                pydoc_corpus(args.out)
            finally:
                sys.stdout = stdout
        with open(os.path.join(args.out, "pydoc", "MANIFEST.json")) as f:
            m = json.load(f)
        print(f"pydoc: {m['documents']} documents, {m['queries']} queries ({m['hard_queries']} hard)")


if __name__ == "__main__":
    main()
