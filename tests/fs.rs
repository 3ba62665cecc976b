//! `ringloop::fs` on real files in temp dirs, on whichever engine `RINGLOOP_ENGINE` names:
//! every call, error kinds, a read dropped mid-flight, 10,000 files without an fd leak,
//! `O_DIRECT` alignment, reads past the end, concurrent writers at disjoint offsets.

mod util;

use std::io::ErrorKind;
use std::rc::Rc;
use std::time::Duration;

use ringloop::buf::{AlignedBuf, IoBuf};
use ringloop::fs::{self, File, OpenOptions};
use util::{TempDir, assert_fds_back_to, pattern, pattern_byte, run, settled_open_fds};

#[test]
fn every_call_round_trips() {
    let dir = TempDir::new("fs-calls");
    let root = dir.path().to_path_buf();
    run(async move {
        let a = root.join("a.bin");
        let data = pattern(1, 100_000);
        fs::write(&a, &data).await.unwrap();
        assert_eq!(fs::read(&a).await.unwrap(), data);

        let m = fs::metadata(&a).await.unwrap();
        assert_eq!(m.len(), 100_000);
        assert!(m.is_file() && !m.is_dir() && !m.is_symlink());
        assert!(m.modified().unwrap() > std::time::UNIX_EPOCH);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(m.permissions().mode() & 0o200, 0o200);

        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&a)
            .await
            .unwrap();
        let (r, buf) = f.read_at(Vec::with_capacity(10), 5).await;
        assert_eq!(r.unwrap(), 10);
        assert_eq!(buf, data[5..15]);
        let (r, _) = f.write_all_at(b"XYZ".to_vec(), 1).await;
        r.unwrap();
        let (r, buf) = f.read_exact_at(vec![0u8; 4], 0).await;
        r.unwrap();
        assert_eq!(&buf[..], &[data[0], b'X', b'Y', b'Z']);
        let (r, bufs) = f.readv_at(vec![vec![0u8; 2], vec![0u8; 3]], 0).await;
        assert_eq!(r.unwrap(), 5);
        assert_eq!(bufs[0], [data[0], b'X']);
        let (r, _) = f
            .writev_at(vec![b"ab".to_vec(), b"cd".to_vec()], 200_000)
            .await;
        assert_eq!(r.unwrap(), 4);
        assert_eq!(f.metadata().await.unwrap().len(), 200_004);
        f.sync_all().await.unwrap();
        f.sync_data().await.unwrap();
        f.set_len(50).await.unwrap();
        assert_eq!(f.metadata().await.unwrap().len(), 50);
        f.allocate(0, 8192).await.unwrap();
        assert_eq!(f.metadata().await.unwrap().len(), 8192);
        f.close().await.unwrap();

        let d = root.join("x/y/z");
        fs::create_dir_all(&d).await.unwrap();
        fs::create_dir_all(&d).await.unwrap();
        assert!(fs::metadata(&d).await.unwrap().is_dir());
        let b = d.join("b.bin");
        fs::rename(&a, &b).await.unwrap();
        assert_eq!(
            fs::metadata(&a).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        fs::hard_link(&b, root.join("hard")).await.unwrap();
        fs::symlink(&b, root.join("soft")).await.unwrap();
        assert!(
            fs::symlink_metadata(root.join("soft"))
                .await
                .unwrap()
                .is_symlink()
        );
        assert_eq!(fs::metadata(root.join("soft")).await.unwrap().len(), 8192);
        assert_eq!(fs::read(root.join("hard")).await.unwrap().len(), 8192);
        for p in [b, root.join("hard"), root.join("soft")] {
            fs::remove_file(&p).await.unwrap();
        }
        fs::create_dir(root.join("x/y/z2")).await.unwrap();
        assert_eq!(
            fs::create_dir(root.join("x/y/z2"))
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::AlreadyExists
        );
        for p in ["x/y/z2", "x/y/z", "x/y", "x"] {
            fs::remove_dir(root.join(p)).await.unwrap();
        }
        assert_eq!(
            fs::remove_dir(root.join("x")).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    });
}

#[test]
fn error_kinds() {
    let dir = TempDir::new("fs-errors");
    let root = dir.path().to_path_buf();
    run(async move {
        let missing = root.join("missing");
        let e = File::open(&missing).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.to_string().contains("missing"), "{e}");
        assert_eq!(
            fs::remove_file(&missing).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        let p = root.join("once");
        fs::write(&p, b"1").await.unwrap();
        let e = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        let nul = root.join("bad\0name");
        for e in [
            File::open(&nul).await.unwrap_err(),
            fs::write(&nul, b"x").await.unwrap_err(),
            fs::metadata(&nul).await.unwrap_err(),
            fs::remove_file(&nul).await.unwrap_err(),
            fs::rename(&p, &nul).await.unwrap_err(),
            fs::create_dir(&nul).await.unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        }
        let e = OpenOptions::new().open(&p).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        // Permission denied: a file without read permission (root ignores modes).
        let locked = root.join("locked");
        OpenOptions::new()
            .write(true)
            .create(true)
            .mode(0o200)
            .open(&locked)
            .await
            .unwrap()
            .close()
            .await
            .unwrap();
        if is_root() {
            return;
        }
        assert_eq!(
            File::open(&locked).await.unwrap_err().kind(),
            ErrorKind::PermissionDenied
        );
    });
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn read_past_eof() {
    let dir = TempDir::new("fs-eof");
    let p = dir.join("short");
    run(async move {
        fs::write(&p, b"hello").await.unwrap();
        let f = File::open(&p).await.unwrap();
        let (r, buf) = f.read_at(Vec::with_capacity(100), 3).await;
        assert_eq!(r.unwrap(), 2);
        assert_eq!(buf, b"lo");
        let (r, buf) = f.read_at(Vec::with_capacity(100), 1_000).await;
        assert_eq!(r.unwrap(), 0);
        assert!(buf.is_empty());
        let (r, buf) = f.read_exact_at(vec![0u8; 10], 0).await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::UnexpectedEof);
        assert_eq!(&buf[..5], b"hello");
        f.close().await.unwrap();
    });
}

#[test]
fn a_dropped_read_keeps_its_buffer_until_the_completion() {
    let dir = TempDir::new("fs-drop");
    let p = dir.join("big");
    let before = settled_open_fds();
    run(async move {
        fs::write(&p, pattern(7, 4 << 20)).await.unwrap();
        let f = Rc::new(File::open(&p).await.unwrap());
        for i in 0..50u64 {
            let f2 = f.clone();
            let t = ringloop::spawn(async move { f2.read_at(vec![0u8; 1 << 20], i * 4096).await });
            // Let it be submitted, then drop it mid-flight.
            ringloop::sleep(Duration::from_micros(50)).await;
            t.cancel();
        }
        // The file still reads correctly afterwards.
        let (r, buf) = f.read_at(Vec::with_capacity(4096), 4096).await;
        assert_eq!(r.unwrap(), 4096);
        assert!(
            buf.iter()
                .enumerate()
                .all(|(i, b)| *b == pattern_byte(7, 4096 + i as u64))
        );
        let f = Rc::try_unwrap(f).ok();
        if let Some(f) = f {
            f.close().await.unwrap();
        }
    });
    assert_fds_back_to(before, Duration::from_secs(5), "after dropped file reads");
}

#[test]
fn ten_thousand_files_without_an_fd_leak() {
    let dir = TempDir::new("fs-10k");
    let root = dir.path().to_path_buf();
    let n = util::env_count("RINGLOOP_FS_FILES", 10_000);
    let before = settled_open_fds();
    run(async move {
        for i in 0..n {
            let p = root.join(format!("f{i}"));
            let body = pattern(i as u64, 64 + i % 64);
            let f = File::create(&p).await.unwrap();
            let (r, _) = f.write_all_at(body.clone(), 0).await;
            r.unwrap();
            f.close().await.unwrap();
            assert_eq!(fs::read(&p).await.unwrap(), body);
            fs::remove_file(&p).await.unwrap();
        }
    });
    assert_fds_back_to(before, Duration::from_secs(5), "after 10,000 files");
}

#[test]
fn o_direct_alignment() {
    let dir = TempDir::new("fs-direct");
    let p = dir.join("direct");
    run(async move {
        fs::write(&p, pattern(3, 1 << 20)).await.unwrap();
        let f = match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&p)
            .await
        {
            Ok(f) => f,
            // tmpfs refuses O_DIRECT: nothing to test there.
            Err(e) if e.kind() == ErrorKind::InvalidInput => return,
            Err(e) => panic!("open O_DIRECT: {e}"),
        };
        // A buffer one byte off its alignment.
        let (r, _) = f
            .read_at(AlignedBuf::new(8192, 4096).unwrap().slice(1..4097), 0)
            .await;
        let e = r.unwrap_err();
        assert!(
            e.kind() == ErrorKind::InvalidInput && e.to_string().contains("AlignedBuf"),
            "{e}"
        );
        let (r, _) = f.read_at(AlignedBuf::new(4096, 4096).unwrap(), 1).await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidInput);
        let (r, _) = f.read_at(AlignedBuf::new(100, 4096).unwrap(), 0).await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidInput);
        let (r, buf) = f.read_at(AlignedBuf::new(8192, 4096).unwrap(), 4096).await;
        assert_eq!(r.unwrap(), 8192);
        assert!(
            buf.as_slice()
                .iter()
                .enumerate()
                .all(|(i, b)| *b == pattern_byte(3, 4096 + i as u64))
        );
        let mut w = AlignedBuf::new(4096, 4096).unwrap();
        w.as_mut_slice().fill(0xAB);
        let (r, _) = f.write_at(w, 0).await;
        assert_eq!(r.unwrap(), 4096);
        f.close().await.unwrap();
        assert!(
            fs::read(&p).await.unwrap()[..4096]
                .iter()
                .all(|b| *b == 0xAB)
        );
    });
}

#[test]
fn concurrent_writers_at_disjoint_offsets() {
    let dir = TempDir::new("fs-writers");
    let p = dir.join("shared");
    run(async move {
        let f = Rc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&p)
                .await
                .unwrap(),
        );
        const CHUNK: usize = 64 * 1024;
        const WRITERS: usize = 32;
        let whole = pattern(11, CHUNK * WRITERS);
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let f = f.clone();
            let part = whole[w * CHUNK..(w + 1) * CHUNK].to_vec();
            tasks.push(ringloop::spawn(async move {
                // In 4 KiB pieces, so the writers interleave.
                for k in 0..CHUNK / 4096 {
                    let piece = part[k * 4096..(k + 1) * 4096].to_vec();
                    let (r, _) = f.write_all_at(piece, (w * CHUNK + k * 4096) as u64).await;
                    r.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let (r, back) = f.read_exact_at(vec![0u8; CHUNK * WRITERS], 0).await;
        r.unwrap();
        for (i, (a, b)) in back.iter().zip(whole.iter()).enumerate() {
            assert_eq!(a, b, "byte {i}");
        }
    });
}
