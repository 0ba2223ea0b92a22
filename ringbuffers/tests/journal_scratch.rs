use std::time::Instant;
use std::os::unix::io::AsRawFd;
use std::os::unix::fs::FileExt;
fn run(dir: &std::path::Path, mode: &str, size: u64) {
        let p = dir.join(format!("x{mode}"));
        let t = Instant::now();
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).open(&p).unwrap();
        f.set_len(size).unwrap();
        if mode == "falloc" { unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, size as i64) }; }
        if mode == "pwrite" { let z = vec![0u8; 1<<20]; let mut o = 0; while o < size { f.write_all_at(&z, o).unwrap(); o += 1<<20; } }
        let mut opts = memmap2::MmapOptions::new(); opts.len(size as usize);
        if mode == "mappop" { opts.populate(); }
        let m = opts.map_raw(&f).unwrap();
        let t2 = t.elapsed();
        let rc = unsafe { libc::madvise(m.as_mut_ptr() as *mut _, size as usize, libc::MADV_POPULATE_WRITE) };
        let t3 = t.elapsed();
        eprintln!("{mode:8} {} prep {t2:?} total {t3:?} rc {rc}", dir.display());
}
#[test]
fn scratch() {
    let d = tempfile::tempdir().unwrap();
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    for _ in 0..2 {
    for mode in ["plain", "falloc", "pwrite", "mappop"] {
        run(d.path(), mode, 64<<20);
    }
    run(shm.path(), "plain", 64<<20);
    }
}
