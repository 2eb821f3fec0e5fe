//! `GraphExecutor`: recorded work replays with the same effect as running
//! it, keeps its buffers alive, and bad captures fail cleanly.

use mlx_native::ops::elementwise::{add, scale};
use mlx_native::ops::fill::fill;
use mlx_native::{
    CommandEncoder, DType, GraphExecutor, MlxBuffer, MlxBufferPool, MlxDevice, MlxError,
};

backend_tests! {
    graph_replays_recorded_work => check_replays,
    graph_capture_failures_leave_the_encoder_usable => check_capture_errors,
    graph_capture_leaves_other_threads_working => check_other_threads_during_capture,
    host_reads_wait_for_a_dropped_encoders_work => check_dropped_encoder,
}

fn all_equal(b: &MlxBuffer, want: f32) -> bool {
    b.read::<f32>().unwrap().iter().all(|&v| v == want)
}

fn check_replays(dev: &MlxDevice) {
    let n = 100_003;
    let acc = MlxBuffer::zeros(dev, DType::F32, &[n]).unwrap();
    let one = MlxBuffer::zeros(dev, DType::F32, &[n]).unwrap();
    let mut enc = dev.command_encoder_on_new_stream().unwrap();
    fill(&mut enc, &one, 1.0).unwrap();
    enc.commit_and_wait().unwrap();

    let (a, o) = (acc.clone(), one.clone());
    let mut graph = GraphExecutor::capture(&mut enc, move |e| {
        add(e, &a, &o, &a)?;
        scale(e, &a, &a, 2.0)
    })
    .unwrap();
    enc.commit_and_wait().unwrap();
    assert!(all_equal(&acc, 0.0), "capture ran the work");

    // The graph owns `one` now; dropping ours must not free it.
    drop(one);
    for want in [2.0, 6.0, 14.0] {
        graph.replay(&mut enc).unwrap();
        enc.commit_and_wait().unwrap();
        assert!(all_equal(&acc, want), "after a replay: want {want}");
    }
    // Any encoder of the device replays it, here the shared stream's.
    let mut other = dev.command_encoder().unwrap();
    graph.replay(&mut other).unwrap();
    other.commit_and_wait().unwrap();
    assert!(all_equal(&acc, 30.0));
    assert_eq!(graph.replays(), 4);
}

/// The error of recording `record`: at capture on CUDA; on the CPU, where
/// capture only keeps the closure, at the first replay.
fn recording_error(
    enc: &mut CommandEncoder,
    record: impl FnMut(&mut CommandEncoder) -> mlx_native::Result<()> + Send + 'static,
) -> MlxError {
    match GraphExecutor::capture(enc, record) {
        Err(e) => e,
        Ok(mut graph) => {
            assert!(!enc.device().is_cuda(), "CUDA capture accepted bad work");
            graph.replay(enc).unwrap_err()
        }
    }
}

fn check_capture_errors(dev: &MlxDevice) {
    let buf = MlxBuffer::zeros(dev, DType::F32, &[64]).unwrap();
    let mut enc = dev.command_encoder_on_new_stream().unwrap();
    let usable = |enc: &mut CommandEncoder, value: f64| {
        fill(enc, &buf, value).unwrap();
        enc.commit_and_wait().unwrap();
        assert!(
            all_equal(&buf, value as f32),
            "encoder unusable after a failed capture"
        );
    };

    let e = recording_error(&mut enc, |_| {
        Err(MlxError::InvalidArgument {
            op: "test",
            msg: "boom".into(),
        })
    });
    assert!(e.to_string().contains("boom"), "{e}");
    usable(&mut enc, 3.0);

    let (a, short) = (
        buf.clone(),
        MlxBuffer::zeros(dev, DType::F32, &[3]).unwrap(),
    );
    let e = recording_error(&mut enc, move |e| add(e, &a, &short, &a));
    assert!(e.to_string().starts_with("add"), "{e}");
    usable(&mut enc, 4.0);

    enc.enable_timing(true);
    let e = GraphExecutor::capture(&mut enc, |_| Ok(())).unwrap_err();
    assert!(e.to_string().contains("timing"), "{e}");
    enc.enable_timing(false);

    if dev.is_cuda() {
        // Waiting for the GPU while recording invalidates the capture.
        let a = buf.clone();
        let e = GraphExecutor::capture(&mut enc, move |e| {
            fill(e, &a, 9.0)?;
            e.commit_and_wait()
        })
        .unwrap_err();
        assert!(!e.to_string().is_empty());
        usable(&mut enc, 5.0);

        // Host access on the recording thread would touch memory before the
        // recorded work has run.
        let a = buf.clone();
        let e = GraphExecutor::capture(&mut enc, move |e| {
            fill(e, &a, 9.0)?;
            a.read::<f32>().map(drop)
        })
        .unwrap_err();
        assert!(e.to_string().contains("recording a graph"), "{e}");
        usable(&mut enc, 6.0);

        // A buffer made and dropped inside the recorded work would be freed
        // before the graph ever runs.
        let d = dev.clone();
        let e = GraphExecutor::capture(&mut enc, move |e| {
            let tmp = MlxBufferPool::new(&d).alloc(DType::F32, &[64])?;
            fill(e, &tmp, 1.0)
        })
        .unwrap_err();
        assert!(e.to_string().contains("freed while recording"), "{e}");
        usable(&mut enc, 8.0);

        // The shared stream carries host reads and writes: it cannot record.
        let mut shared = dev.command_encoder().unwrap();
        let e = GraphExecutor::capture(&mut shared, |_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("encoder of its own"), "{e}");
        usable(&mut shared, 7.0);

        let mut graph = GraphExecutor::capture(&mut enc, |_| Ok(())).unwrap();
        let mut cpu = MlxDevice::cpu().command_encoder().unwrap();
        let e = graph.replay(&mut cpu).unwrap_err();
        assert!(matches!(e, MlxError::DeviceMismatch { .. }), "{e}");
    }
}

/// While one thread records, another queues work, waits for it, reads and
/// writes: host waits skip only the recording stream.
fn check_other_threads_during_capture(dev: &MlxDevice) {
    use std::sync::mpsc;
    let (started, on_start) = mpsc::channel::<()>();
    let (done, on_done) = mpsc::channel::<()>();
    let other_dev = dev.clone();
    let other = std::thread::spawn(move || {
        on_start.recv().unwrap();
        let b = MlxBuffer::zeros(&other_dev, DType::F32, &[1000]).unwrap();
        let mut e = other_dev.command_encoder().unwrap();
        fill(&mut e, &b, 7.0).unwrap();
        e.commit_and_wait().unwrap();
        let filled = all_equal(&b, 7.0);
        b.write(&[1.0f32; 1000]).unwrap();
        let written = all_equal(&b, 1.0);
        done.send(()).unwrap();
        filled && written
    });

    let target = MlxBuffer::zeros(dev, DType::F32, &[1000]).unwrap();
    let t = target.clone();
    let mut enc = dev.command_encoder_on_new_stream().unwrap();
    // Runs at capture on CUDA and at the replay on the CPU; the other
    // thread works while it waits.
    let mut graph = GraphExecutor::capture(&mut enc, move |e| {
        fill(e, &t, 2.0)?;
        let _ = started.send(());
        let _ = on_done.recv();
        Ok(())
    })
    .unwrap();
    graph.replay(&mut enc).unwrap();
    enc.commit_and_wait().unwrap();
    assert!(
        other.join().unwrap(),
        "the other thread saw wrong values during the capture"
    );
    assert!(all_equal(&target, 2.0));
}

/// Work committed on an encoder of its own that is then dropped without
/// waiting still finishes before a later host read (host waits cover only
/// live streams, so a stream's destruction waits for its work).
fn check_dropped_encoder(dev: &MlxDevice) {
    let n = 1 << 22;
    let buf = MlxBuffer::zeros(dev, DType::F32, &[n]).unwrap();
    for value in [3.0, 5.0] {
        let mut enc = dev.command_encoder_on_new_stream().unwrap();
        fill(&mut enc, &buf, value).unwrap();
        scale(&mut enc, &buf, &buf, 2.0).unwrap();
        enc.commit();
        drop(enc);
        assert!(
            all_equal(&buf, 2.0 * value as f32),
            "read before the work finished"
        );
    }
}
