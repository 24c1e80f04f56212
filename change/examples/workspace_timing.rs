//! Times create / commit / diff / apply / discard on a project: `cargo run -p troupe-change
//! --example workspace_timing -- <project> <root> [in-place]`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let project = std::path::PathBuf::from(&args[1]);
    let spaces = troupe_change::workspace::Workspaces::new(&args[2]);
    let in_place = args.get(3).is_some();
    let t = Instant::now();
    let mut ws =
        spaces.create(&project, "0192f0aa-bbbb-7ccc-8ddd-eeeeffff0001", in_place, &[]).unwrap();
    println!("create {:?}: {:?}", ws.kind, t.elapsed());
    let t = Instant::now();
    println!("commit (nothing): {:?} {:?}", ws.commit("none").unwrap().is_none(), t.elapsed());
    std::fs::write(ws.dir.join("timing-new.txt"), "new\n").unwrap();
    let t = Instant::now();
    let c = ws.commit("one file").unwrap().unwrap();
    println!("commit (1 file): {:?} {:?}", c.files.len(), t.elapsed());
    let t = Instant::now();
    let d = ws.diff().unwrap();
    println!("diff: {} files {:?}", d.files.len(), t.elapsed());
    if !in_place {
        let t = Instant::now();
        ws.apply(None).unwrap();
        println!("apply: {:?}", t.elapsed());
        let t = Instant::now();
        ws.revert().unwrap();
        println!("revert: {:?}", t.elapsed());
    } else {
        let t = Instant::now();
        ws.revert().unwrap();
        println!("revert: {:?}", t.elapsed());
    }
    let t = Instant::now();
    ws.discard().unwrap();
    println!("discard: {:?}", t.elapsed());
}
