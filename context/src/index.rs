//! The BM25 index (tantivy), beside the graph and always rebuildable from it.
//!
//! Every commit carries a watermark in its payload: the store it belongs to and the
//! sequence number of the last graph change it contains. The graph logs each node change
//! under a new sequence number in the same transaction as the change itself, so on open the
//! changes above the watermark are exactly what the index is missing (after a crash between
//! the graph write and the index commit) and are replayed; an index that is missing,
//! unreadable, of another schema or of another store is rebuilt whole.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::{
    BooleanQuery, ConstScoreQuery, Occur, Query, QueryParser, TermQuery, TermSetQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::error::{Error, Result};
use crate::model::{NodeId, NodeType, ProjectId};

/// Bump when the schema or the text preparation changes: the index is then rebuilt.
const SCHEMA_VERSION: u32 = 2;

/// Memory for the (single) indexing thread.
const WRITER_MEMORY: usize = 32_000_000;

/// Field boosts: a match in the title counts most, then tags, the body, and a file's
/// full content least (it is long and matches a lot).
const BOOST_TITLE: f32 = 3.0;
const BOOST_TAGS: f32 = 2.0;
const BOOST_BODY: f32 = 1.0;
const BOOST_CONTENT: f32 = 0.5;

/// What the index knows of the graph, stored in each commit's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Watermark {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema: u32,
    /// The store's id (its `meta/store_id`): an index copied from elsewhere is rebuilt.
    pub store: String,
    /// The last graph change the index contains.
    pub seq: u64,
}

impl Watermark {
    pub(crate) fn new(store: &str, seq: u64) -> Watermark {
        Watermark { schema: SCHEMA_VERSION, store: store.to_string(), seq }
    }
}

/// One node as the index sees it.
#[derive(Debug, Clone)]
pub(crate) struct IndexDoc<'a> {
    pub id: &'a NodeId,
    pub project: &'a ProjectId,
    pub node_type: NodeType,
    pub title: &'a str,
    pub body: &'a str,
    pub tags: &'a [String],
    pub content: Option<&'a str>,
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    id: Field,
    project: Field,
    node_type: Field,
    title: Field,
    body: Field,
    tags: Field,
    content: Field,
}

/// The text analyzer of every searched field: words, lowercased, English stop words
/// removed (queries are often whole task descriptions, and "the", "to", "from" would
/// otherwise match everything), stemmed.
const TOKENIZER: &str = "troupe_en";

fn register_tokenizer(index: &Index) {
    use tantivy::tokenizer::{
        Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter,
        TextAnalyzer,
    };
    let builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .dynamic();
    let builder = match StopWordFilter::new(Language::English) {
        Some(stop) => builder.filter_dynamic(stop),
        None => builder,
    };
    let analyzer = builder.filter_dynamic(Stemmer::new(Language::English)).build();
    index.tokenizers().register(TOKENIZER, analyzer);
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        project: b.add_text_field("project", STRING),
        node_type: b.add_text_field("type", STRING),
        title: b.add_text_field("title", text.clone()),
        body: b.add_text_field("body", text.clone()),
        tags: b.add_text_field("tags", text.clone()),
        content: b.add_text_field("content", text),
    };
    (b.build(), fields)
}

/// The tantivy index of one store.
pub(crate) struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    parser: QueryParser,
    fields: Fields,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").field("docs", &self.num_docs()).finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Open the index in `dir`, or create it; an unreadable index or one of another schema
    /// is discarded (the caller rebuilds it: the watermark is then `None`).
    pub(crate) fn open(dir: &Path) -> Result<(SearchIndex, Option<Watermark>)> {
        match Self::try_open(dir) {
            Ok(opened) => Ok(opened),
            Err(e) => {
                tracing::warn!(
                    "the search index at {} is unusable ({e}); rebuilding it",
                    dir.display()
                );
                std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                Self::try_open(dir)
            }
        }
    }

    fn try_open(dir: &Path) -> Result<(SearchIndex, Option<Watermark>)> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let (schema, fields) = schema();
        let directory = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| Error::Index(e.to_string()))?;
        let index = Index::open_or_create(directory, schema)?;
        register_tokenizer(&index);
        let watermark = index
            .load_metas()?
            .payload
            .and_then(|p| serde_json::from_str::<Watermark>(&p).ok())
            .filter(|w| w.schema == SCHEMA_VERSION);
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let mut parser = QueryParser::for_index(
            &index,
            vec![fields.title, fields.tags, fields.body, fields.content],
        );
        parser.set_field_boost(fields.title, BOOST_TITLE);
        parser.set_field_boost(fields.tags, BOOST_TAGS);
        parser.set_field_boost(fields.body, BOOST_BODY);
        parser.set_field_boost(fields.content, BOOST_CONTENT);
        Ok((SearchIndex { index, reader, writer: Mutex::new(writer), parser, fields }, watermark))
    }

    fn document(&self, d: &IndexDoc<'_>) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.id, d.id.as_str());
        doc.add_text(f.project, d.project.as_str());
        doc.add_text(f.node_type, d.node_type.as_str());
        doc.add_text(f.title, searchable(d.title));
        doc.add_text(f.body, searchable(d.body));
        doc.add_text(f.tags, d.tags.join(" "));
        if let Some(c) = d.content {
            doc.add_text(f.content, searchable(c));
        }
        doc
    }

    /// Replace these nodes' documents (`None`: remove it) and commit with `watermark`.
    pub(crate) fn apply(
        &self,
        changes: &[(NodeId, Option<IndexDoc<'_>>)],
        watermark: &Watermark,
    ) -> Result<()> {
        self.write(watermark, |writer| {
            for (id, doc) in changes {
                writer.delete_term(Term::from_field_text(self.fields.id, id.as_str()));
                if let Some(doc) = doc {
                    writer.add_document(self.document(doc))?;
                }
            }
            Ok(())
        })
    }

    /// Replace the whole index with `docs` and commit with `watermark`. `each` is called
    /// after every document (for progress).
    pub(crate) fn rebuild<'a, I>(
        &self,
        docs: I,
        watermark: &Watermark,
        each: &mut dyn FnMut(),
    ) -> Result<()>
    where
        I: Iterator<Item = Result<IndexDoc<'a>>>,
    {
        self.write(watermark, |writer| {
            writer.delete_all_documents()?;
            for doc in docs {
                writer.add_document(self.document(&doc?))?;
                each();
            }
            Ok(())
        })
    }

    /// Make the changes `f` makes and commit them with `watermark`, all or nothing (a
    /// failure rolls the writer back), then let searches see them.
    fn write(
        &self,
        watermark: &Watermark,
        f: impl FnOnce(&mut IndexWriter) -> Result<()>,
    ) -> Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let result = f(&mut writer).and_then(|()| commit(&mut writer, watermark));
        if result.is_err() {
            let _ = writer.rollback();
        }
        result?;
        self.reader.reload()?;
        Ok(())
    }

    /// The ids of the best `limit` BM25 matches of `text`, best first, with their scores;
    /// only in `project` (all projects when `None`) and of `types` (all when empty).
    pub(crate) fn search(
        &self,
        text: &str,
        project: Option<&ProjectId>,
        types: &[NodeType],
        limit: usize,
    ) -> Result<Vec<(NodeId, f32)>> {
        let cleaned = query_text(text);
        if limit == 0 || cleaned.trim().is_empty() {
            return Ok(Vec::new());
        }
        let (text_query, _errors) = self.parser.parse_query_lenient(&cleaned);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text_query)];
        if let Some(p) = project {
            let term = TermQuery::new(
                Term::from_field_text(self.fields.project, p.as_str()),
                IndexRecordOption::Basic,
            );
            clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(Box::new(term), 0.0))));
        }
        if !types.is_empty() {
            let terms =
                types.iter().map(|t| Term::from_field_text(self.fields.node_type, t.as_str()));
            clauses.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(Box::new(TermSetQuery::new(terms)), 0.0)),
            ));
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        let mut out = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            if let Some(id) = doc.get_first(self.fields.id).and_then(|v| v.as_str()) {
                out.push((NodeId::from_trusted(id.to_string()), score));
            }
        }
        Ok(out)
    }

    /// Documents in the last committed state.
    pub(crate) fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The watermark of the last commit.
    pub(crate) fn watermark(&self) -> Option<Watermark> {
        self.index
            .load_metas()
            .ok()?
            .payload
            .and_then(|p| serde_json::from_str::<Watermark>(&p).ok())
    }
}

fn commit(writer: &mut IndexWriter, watermark: &Watermark) -> Result<()> {
    let payload = serde_json::to_string(watermark)?;
    let mut prepared = writer.prepare_commit()?;
    prepared.set_payload(&payload);
    prepared.commit()?;
    Ok(())
}

/// The query as plain words: query syntax characters (`:`, `"`, `(`, `-`, …) are spaces,
/// so any input is a valid query and no input can address fields. Identifiers are split
/// as in the documents.
fn query_text(text: &str) -> String {
    let plain: String = text.chars().map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect();
    searchable(&plain)
}

/// Text as indexed: the text itself, followed by the parts of its compound identifiers
/// (`RateLimiter` → `Rate Limiter`, `HTTPServer2` → `HTTP Server 2`), so that a search for
/// "rate limiter" finds `RateLimiter` and one for `RateLimiter` finds "rate limiter".
/// (`snake_case` needs nothing: the tokenizer splits at `_`.)
pub(crate) fn searchable(text: &str) -> String {
    let mut extra = String::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let parts = split_identifier(word);
        if parts.len() > 1 {
            for p in parts {
                extra.push(' ');
                extra.push_str(p);
            }
        }
    }
    if extra.is_empty() { text.to_string() } else { format!("{text}\n{extra}") }
}

fn split_identifier(word: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = word.char_indices().collect();
    let mut parts = Vec::new();
    let mut start = 0;
    for i in 1..chars.len() {
        let (pos, c) = chars[i];
        let prev = chars[i - 1].1;
        let next = chars.get(i + 1).map(|x| x.1);
        let boundary = (prev.is_lowercase() && c.is_uppercase())
            || (prev.is_alphabetic() && c.is_numeric())
            || (prev.is_numeric() && c.is_alphabetic())
            || (prev.is_uppercase() && c.is_uppercase() && next.is_some_and(char::is_lowercase));
        if boundary {
            parts.push(&word[start..pos]);
            start = pos;
        }
    }
    if start < word.len() {
        parts.push(&word[start..]);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_split() {
        assert_eq!(split_identifier("RateLimiter"), ["Rate", "Limiter"]);
        assert_eq!(split_identifier("HTTPServer2"), ["HTTP", "Server", "2"]);
        assert_eq!(split_identifier("plain"), ["plain"]);
        assert_eq!(split_identifier("getX"), ["get", "X"]);
        assert!(split_identifier("").is_empty());
        assert_eq!(searchable("use RateLimiter;"), "use RateLimiter;\n Rate Limiter");
        assert_eq!(searchable("nothing to split"), "nothing to split");
    }

    #[test]
    fn query_syntax_is_neutralised() {
        assert_eq!(query_text("title:foo AND \"bar\" -baz"), "title foo AND  bar   baz");
    }

    fn doc<'a>(
        id: &'a NodeId,
        p: &'a ProjectId,
        t: NodeType,
        title: &'a str,
        body: &'a str,
    ) -> IndexDoc<'a> {
        IndexDoc { id, project: p, node_type: t, title, body, tags: &[], content: None }
    }

    #[test]
    fn search_filters_by_project_and_type_and_keeps_the_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let (index, wm) = SearchIndex::open(dir.path()).unwrap();
        assert_eq!(wm, None);
        let (pa, pb) = (ProjectId::new("a").unwrap(), ProjectId::new("b").unwrap());
        let ids: Vec<NodeId> = (0..3).map(|i| NodeId::new(format!("n{i}")).unwrap()).collect();
        let changes = vec![
            (
                ids[0].clone(),
                Some(doc(&ids[0], &pa, NodeType::Task, "Add rate limiting", "token bucket")),
            ),
            (
                ids[1].clone(),
                Some(doc(&ids[1], &pb, NodeType::Task, "Add rate limiting", "elsewhere")),
            ),
            (
                ids[2].clone(),
                Some(doc(&ids[2], &pa, NodeType::Decision, "Limits", "rate limits per agent")),
            ),
        ];
        index.apply(&changes, &Watermark::new("s", 7)).unwrap();
        let hits = index.search("rate limit", Some(&pa), &[], 10).unwrap();
        let mut found: Vec<&str> = hits.iter().map(|h| h.0.as_str()).collect();
        found.sort();
        assert_eq!(found, ["n0", "n2"]);
        let hits = index.search("rate limit", Some(&pa), &[NodeType::Decision], 10).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(index.search("rate", None, &[], 10).unwrap().len(), 3);
        assert!(index.search("   ", None, &[], 10).unwrap().is_empty());
        assert!(index.search("rate", None, &[], 0).unwrap().is_empty());
        drop(index);
        let (index, wm) = SearchIndex::open(dir.path()).unwrap();
        assert_eq!(wm, Some(Watermark::new("s", 7)));
        index.apply(&[(ids[0].clone(), None)], &Watermark::new("s", 8)).unwrap();
        assert_eq!(index.num_docs(), 2);
        assert_eq!(index.watermark(), Some(Watermark::new("s", 8)));
    }

    #[test]
    fn an_unreadable_index_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("meta.json"), "{ not json").unwrap();
        let (index, wm) = SearchIndex::open(dir.path()).unwrap();
        assert_eq!(wm, None);
        assert_eq!(index.num_docs(), 0);
    }
}
