//! The store's key encoding: how nodes, a project's nodes by type, edges, vectors and the
//! change log are keyed in sled. Keys use `\0` as the separator (ids never contain it) and
//! sequence numbers are big-endian `u64`s, so that keys sort as their parts do. This is an
//! on-disk format: changing it needs a migration.

use crate::error::{Error, Result};
use crate::model::{EdgeType, NodeId, NodeType, ProjectId};

/// `project \0`: the prefix of a project's keys in `by_project` and `vectors`.
pub(crate) fn project_prefix(project: &ProjectId) -> Vec<u8> {
    let mut k = project.as_str().as_bytes().to_vec();
    k.push(0);
    k
}

/// `project \0 type-code id`: a node in its project's list of nodes by type.
pub(crate) fn by_project_key(project: &ProjectId, node_type: NodeType, id: &NodeId) -> Vec<u8> {
    let mut k = project_prefix(project);
    k.push(node_type.code());
    k.extend_from_slice(id.as_str().as_bytes());
    k
}

/// The parts of a [`by_project_key`]: project, type, node id.
pub(crate) fn split_by_project_key(key: &[u8]) -> Option<(&str, NodeType, &str)> {
    let sep = key.iter().position(|b| *b == 0)?;
    let project = std::str::from_utf8(&key[..sep]).ok()?;
    let code = *key.get(sep + 1)?;
    let id = std::str::from_utf8(key.get(sep + 2..)?).ok()?;
    Some((project, NodeType::from_code(code)?, id))
}

/// `project \0 id`: a node's vectors.
pub(crate) fn vector_key(project: &ProjectId, id: &NodeId) -> Vec<u8> {
    let mut k = project_prefix(project);
    k.extend_from_slice(id.as_str().as_bytes());
    k
}

/// `id \0`: the prefix of a node's edges (in `edges_out` and `edges_in`).
pub(crate) fn id_prefix(id: &NodeId) -> Vec<u8> {
    let mut k = id.as_str().as_bytes().to_vec();
    k.push(0);
    k
}

/// `a \0 code b`: an edge key (out: a = from, b = to; in: a = to, b = from).
pub(crate) fn edge_key(a: &NodeId, edge_type: EdgeType, b: &NodeId) -> Vec<u8> {
    let mut k = id_prefix(a);
    k.push(edge_type.code());
    k.extend_from_slice(b.as_str().as_bytes());
    k
}

/// The parts of an [`edge_key`]: a, type, b.
pub(crate) fn split_edge_key(key: &[u8]) -> Option<(NodeId, EdgeType, NodeId)> {
    let sep = key.iter().position(|b| *b == 0)?;
    let a = std::str::from_utf8(&key[..sep]).ok()?;
    let code = *key.get(sep + 1)?;
    let b = std::str::from_utf8(key.get(sep + 2..)?).ok()?;
    Some((
        NodeId::from_trusted(a.into()),
        EdgeType::from_code(code)?,
        NodeId::from_trusted(b.into()),
    ))
}

/// A sequence number (change log key, `pruned_upto`, the store format) as stored.
pub(crate) fn encode_seq(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// A sequence number from its stored bytes.
pub(crate) fn decode_seq(bytes: &[u8]) -> Result<u64> {
    let arr: [u8; 8] =
        bytes.try_into().map_err(|_| Error::corrupt("sequence number", "not 8 bytes"))?;
    Ok(u64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout is an on-disk format: these bytes are what existing stores hold.
    #[test]
    fn keys_keep_their_on_disk_layout() {
        let p = ProjectId::from_trusted("proj".into());
        let id = NodeId::from_trusted("n1".into());
        let other = NodeId::from_trusted("n2".into());
        assert_eq!(project_prefix(&p), b"proj\0");
        let k = by_project_key(&p, NodeType::Task, &id);
        assert_eq!(k, [b"proj\0".as_slice(), &[NodeType::Task.code()], b"n1"].concat());
        assert_eq!(split_by_project_key(&k), Some(("proj", NodeType::Task, "n1")));
        assert_eq!(vector_key(&p, &id), b"proj\0n1");
        let e = edge_key(&id, EdgeType::CausedBy, &other);
        assert_eq!(e, [b"n1\0".as_slice(), &[EdgeType::CausedBy.code()], b"n2"].concat());
        assert_eq!(split_edge_key(&e), Some((id.clone(), EdgeType::CausedBy, other)));
        assert!(e.starts_with(&id_prefix(&id)));
        assert_eq!(decode_seq(&encode_seq(258)).unwrap(), 258);
        assert_eq!(encode_seq(258), [0, 0, 0, 0, 0, 0, 1, 2]);
        assert!(decode_seq(b"short").is_err());
        assert!(split_by_project_key(b"no separator").is_none());
    }
}
