//! Devices, buffers, the pool, the kernel registry, encoders, events and
//! the encoder worker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use mlx_native::config::{Config, DeviceChoice};
use mlx_native::ops::elementwise::scale;
use mlx_native::ops::fill::fill;
use mlx_native::{
    BackendKind, DType, EncoderWorker, KernelArg, KernelRegistry, LaunchConfig, MlxBuffer,
    MlxBufferPool, MlxDevice, MlxError,
};

use crate::harness::*;

backend_tests! {
    buffer_round_trip_and_views => check_buffer_views,
    buffer_rejects_bad_input => check_buffer_errors,
    pool_reuses_after_reset => check_pool,
    encoder_counts_and_times_dispatches => check_encoder_counters,
    events_order_two_encoders => check_events,
    worker_runs_jobs_and_returns_errors => check_worker,
}

fn check_buffer_views(dev: &MlxDevice) {
    let z = MlxBuffer::zeros(dev, DType::F32, &[3, 5]).unwrap();
    assert_eq!(z.read::<f32>().unwrap(), vec![0.0; 15]);
    assert_eq!(
        (z.element_count(), z.byte_len(), z.byte_offset(), z.shape()),
        (15, 60, 0, &[3usize, 5][..])
    );
    let data: Vec<i32> = (0..100).map(|i| i * 3 - 50).collect();
    let b = MlxBuffer::from_slice(dev, &data, &[10, 10]).unwrap();
    assert_eq!(b.to_vec::<i32>().unwrap(), data);
    let view = b.slice_view(12 * 4, 7).unwrap();
    assert_eq!((view.byte_offset(), view.shape()), (48, &[7usize][..]));
    assert_eq!(view.read::<i32>().unwrap(), data[12..19].to_vec());
    view.write(&[1, 2, 3, 4, 5, 6, 7]).unwrap();
    let all = b.read::<i32>().unwrap();
    assert_eq!(&all[12..19], &[1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(all[11], data[11]);
    assert_eq!(all[19], data[19]);
    let nested = view.slice_view(8, 2).unwrap();
    assert_eq!(nested.read::<i32>().unwrap(), vec![3, 4]);
    let reshaped = b.with_shape(&[4, 25]).unwrap();
    assert!(reshaped.same_allocation(&b));
    assert_eq!(reshaped.shape(), &[4, 25]);
    let bytes = b.reinterpret(DType::U8, &[400]).unwrap();
    assert_eq!(bytes.read::<u8>().unwrap()[..4], (-50i32).to_le_bytes());
    if dev.backend() == BackendKind::Cpu {
        let mut v = b.slice_view(0, 3).unwrap();
        assert_eq!(&*v.as_slice::<i32>().unwrap(), &[-50, -47, -44]);
        v.as_mut_slice::<i32>().unwrap()[1] = 99;
        assert_eq!(b.read::<i32>().unwrap()[1], 99);
    } else {
        assert!(matches!(
            b.as_slice::<i32>().unwrap_err(),
            MlxError::Unsupported { .. }
        ));
    }
    let mut enc = dev.command_encoder().unwrap();
    let copy = MlxBuffer::zeros(dev, DType::I32, &[7]).unwrap();
    enc.copy_buffer(&view, &copy).unwrap();
    enc.commit_and_wait().unwrap();
    assert_eq!(copy.read::<i32>().unwrap(), vec![1, 2, 3, 4, 5, 6, 7]);
}

fn check_buffer_errors(dev: &MlxDevice) {
    let b = MlxBuffer::zeros(dev, DType::F32, &[10]).unwrap();
    assert!(matches!(
        b.read::<i32>().unwrap_err(),
        MlxError::DTypeMismatch { op: "read", .. }
    ));
    assert!(matches!(
        b.write(&[1.0f32; 9]).unwrap_err(),
        MlxError::ShapeMismatch { op: "write", .. }
    ));
    assert!(b.write(&[1u32; 10]).is_err());
    assert!(matches!(
        b.slice_view(8, 9).unwrap_err(),
        MlxError::OutOfBounds {
            op: "slice_view",
            ..
        }
    ));
    assert!(b.slice_view(2, 1).is_err(), "unaligned offset");
    assert!(b.slice_view(0, 0).is_err());
    assert!(b.slice_view(usize::MAX - 3, 1).is_err());
    assert!(b.with_shape(&[3, 3]).is_err());
    assert!(b.reinterpret(DType::F16, &[21]).is_err());
    assert!(MlxBuffer::zeros(dev, DType::F32, &[0, 4]).is_err());
    assert!(MlxBuffer::zeros(dev, DType::F32, &[]).is_err());
    let e = MlxBuffer::zeros(dev, DType::F32, &[usize::MAX / 2, 3]).unwrap_err();
    assert!(e.to_string().contains("overflow"), "{e}");
    assert!(MlxBuffer::from_slice(dev, &[1.0f32; 5], &[2, 3]).is_err());
    let mut enc = dev.command_encoder().unwrap();
    assert!(enc
        .copy_buffer(&b, &MlxBuffer::zeros(dev, DType::F32, &[9]).unwrap())
        .is_err());
}

fn check_pool(dev: &MlxDevice) {
    let mut pool = MlxBufferPool::new(dev);
    let a = pool.alloc(DType::F32, &[100]).unwrap();
    assert_eq!(a.allocation_bytes(), 512);
    let _b = pool.alloc(DType::F16, &[3000]).unwrap();
    assert_eq!(pool.stats().allocations, 2);
    assert_eq!(pool.stats().in_use, 2);
    pool.reset();
    assert_eq!((pool.stats().in_use, pool.stats().free), (0, 2));
    let c = pool.alloc(DType::U8, &[300]).unwrap();
    assert!(
        c.same_allocation(&a),
        "a 300-byte request reuses the 512-byte bucket"
    );
    let d = pool.alloc(DType::F32, &[100]).unwrap();
    assert!(!d.same_allocation(&a));
    let s = pool.stats();
    assert_eq!((s.allocations, s.reuses, s.in_use), (3, 1, 2));
    assert_eq!(s.bytes_held, 512 + 8192 + 512);
    c.write(&vec![7u8; 300]).unwrap();
    assert_eq!(c.read::<u8>().unwrap(), vec![7u8; 300]);
    pool.reset();
    pool.release_free();
    assert_eq!(pool.stats().bytes_held, 0);
    assert!(pool.alloc(DType::F32, &[0]).is_err());
}

fn check_encoder_counters(dev: &MlxDevice) {
    let b = MlxBuffer::zeros(dev, DType::F32, &[1 << 16]).unwrap();
    let mut enc = dev.command_encoder().unwrap();
    enc.enable_timing(true);
    fill(&mut enc, &b, 2.0).unwrap();
    scale(&mut enc, &b, &b, 1.5).unwrap();
    enc.memory_barrier();
    enc.commit();
    enc.commit_and_wait().unwrap();
    let s = enc.stats();
    assert_eq!((s.dispatches, s.commits, s.syncs), (2, 2, 1));
    let t = enc.take_timings().unwrap();
    assert_eq!(
        t.iter().map(|t| t.label.as_str()).collect::<Vec<_>>(),
        vec!["fill", "scale"]
    );
    assert!(t.iter().all(|t| t.ms >= 0.0 && t.ms < 1e4));
    assert_eq!(b.read::<f32>().unwrap()[12345], 3.0);
}

fn check_events(dev: &MlxDevice) {
    let n = 1 << 22;
    let a = MlxBuffer::zeros(dev, DType::F32, &[n]).unwrap();
    let out = MlxBuffer::zeros(dev, DType::F32, &[n]).unwrap();
    let mut producer = dev.command_encoder_on_new_stream().unwrap();
    let mut consumer = dev.command_encoder_on_new_stream().unwrap();
    fill(&mut producer, &a, 1.0).unwrap();
    for _ in 0..20 {
        scale(&mut producer, &a, &a, 2.0).unwrap();
    }
    let done = producer.signal_event().unwrap();
    producer.commit();
    consumer.wait_event(&done).unwrap();
    scale(&mut consumer, &a, &out, 0.5).unwrap();
    consumer.commit_and_wait().unwrap();
    done.wait().unwrap();
    let v = out.read::<f32>().unwrap();
    assert!(
        v.iter().all(|&x| x == 524288.0),
        "consumer ran before the producer finished: {}",
        v[n - 1]
    );
}

fn check_worker(dev: &MlxDevice) {
    let worker = EncoderWorker::spawn(dev).unwrap();
    let bufs: Vec<MlxBuffer> = (0..8)
        .map(|_| MlxBuffer::zeros(dev, DType::F32, &[4097]).unwrap())
        .collect();
    let ran = Arc::new(AtomicUsize::new(0));
    for (i, b) in bufs.iter().enumerate() {
        let (b, ran) = (b.clone(), ran.clone());
        worker
            .submit(move |enc| {
                ran.fetch_add(1, Ordering::SeqCst);
                fill(enc, &b, i as f64)
            })
            .unwrap();
    }
    let event = worker.flush().unwrap();
    let mut enc = dev.command_encoder().unwrap();
    enc.wait_event(&event).unwrap();
    let total = MlxBuffer::zeros(dev, DType::F32, &[4097]).unwrap();
    for b in &bufs {
        mlx_native::ops::elementwise::add(&mut enc, &total, b, &total).unwrap();
    }
    enc.commit_and_wait().unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 8);
    assert!(total.read::<f32>().unwrap().iter().all(|&x| x == 28.0));
    let stats = worker.wait().unwrap();
    assert_eq!(stats.dispatches, 8);
    // An error comes back once, and later jobs are skipped until then.
    let bad = MlxBuffer::zeros(dev, DType::U8, &[4]).unwrap();
    worker.submit(move |enc| fill(enc, &bad, 1000.0)).unwrap();
    let skipped = ran.clone();
    worker
        .submit(move |_| {
            skipped.fetch_add(100, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
    let e = worker.wait().unwrap_err();
    assert!(e.to_string().starts_with("fill:"), "{e}");
    assert_eq!(ran.load(Ordering::SeqCst), 8);
    worker.submit(|_| panic!("job panics")).unwrap();
    assert!(matches!(worker.flush().unwrap_err(), MlxError::Worker(_)));
    worker.wait().unwrap();
}

#[test]
fn config_reads_device_choice_and_cache_dir() {
    let map = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let c = Config::from_lookup(map(&[
        ("MLXN_DEVICE", "cuda:1"),
        ("MLXN_CACHE_DIR", "/tmp/x"),
    ]));
    assert_eq!(c.device, DeviceChoice::Cuda(1));
    assert_eq!(
        c.kernel_cache_dir.as_deref(),
        Some(std::path::Path::new("/tmp/x"))
    );
    let c = Config::from_lookup(map(&[("MLXN_DEVICE", "tpu"), ("HOME", "/home/u")]));
    assert!(c.device_error.unwrap().contains("tpu"));
    assert_eq!(
        c.kernel_cache_dir.as_deref(),
        Some(std::path::Path::new("/home/u/.cache/mlx-native"))
    );
    let c = Config::from_lookup(map(&[
        ("MLXN_DEVICE", "cpu"),
        ("MLXN_NO_DISK_CACHE", "1"),
        ("HOME", "/h"),
    ]));
    assert_eq!((c.device, c.kernel_cache_dir), (DeviceChoice::Cpu, None));
}

#[test]
fn cpu_registry_knows_names_but_runs_no_kernels() {
    let dev = MlxDevice::cpu();
    let r = dev.registry();
    assert!(r.kernel_names().iter().any(|n| n == "copy_contiguous_v16"));
    assert!(matches!(
        r.get_pipeline("no_such_kernel").unwrap_err(),
        MlxError::KernelNotFound(_)
    ));
    assert!(matches!(
        r.get_pipeline("fill_b32").unwrap_err(),
        MlxError::Unsupported { .. }
    ));
    r.register_source("user_k", "extern \"C\" __global__ void user_k() {}")
        .unwrap();
    r.register_source("user_k", "extern \"C\" __global__ void user_k() {}")
        .unwrap();
    assert!(r
        .register_source("user_k", "extern \"C\" __global__ void user_k(int) {}")
        .is_err());
    assert!(r.register_module("m", "x", &[]).is_err());
    let mut enc = dev.command_encoder().unwrap();
    assert!(matches!(
        enc.dispatch_kernel("user_k", LaunchConfig::linear(1, 1), &[])
            .unwrap_err(),
        MlxError::Unsupported { .. }
    ));
}

/// Tests that only mean something on a GPU.
mod cuda_only {
    use super::*;

    const ADD5: &str = r#"
#include "mlxn_prelude.cuh"
struct Affine { float mul; float add; };
extern "C" __global__ void user_axpb(const float* x, const float* y, float* out, Affine p, u32 n) {
    u32 i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = x[i] * p.mul + y[i] + p.add;
}
"#;

    #[repr(C)]
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    struct Affine {
        mul: f32,
        add: f32,
    }

    #[test]
    #[ignore = "needs a CUDA GPU: run with --include-ignored"]
    fn user_kernel_with_five_arguments() {
        let dev = cuda_device();
        let props = dev.cuda_properties().unwrap();
        assert!(
            props.compute_capability.0 >= 7 && props.sm_count > 0 && dev.total_memory() > 1 << 30
        );
        dev.registry().register_source("user_axpb", ADD5).unwrap();
        let n = 1000u32;
        let mut rng = Rng::new(21);
        let (xv, yv) = (
            rng.vec(n as usize, -1.0, 1.0),
            rng.vec(n as usize, -1.0, 1.0),
        );
        let x = MlxBuffer::from_slice(&dev, &xv, &[n as usize]).unwrap();
        let y = MlxBuffer::from_slice(&dev, &yv, &[n as usize]).unwrap();
        let out = poisoned(&dev, DType::F32, &[n as usize]);
        let p = Affine {
            mul: 3.0,
            add: 0.25,
        };
        let mut enc = dev.command_encoder().unwrap();
        let args = [
            KernelArg::Buffer(&x),
            KernelArg::Buffer(&y),
            KernelArg::Buffer(&out),
            KernelArg::pod(&p),
            KernelArg::pod(&n),
        ];
        enc.dispatch_kernel(
            "user_axpb",
            LaunchConfig::linear(n.div_ceil(128), 128),
            &args,
        )
        .unwrap();
        enc.commit_and_wait().unwrap();
        let got = out.read::<f32>().unwrap();
        for i in 0..n as usize {
            assert!(
                (got[i] - (xv[i] * 3.0 + yv[i] + 0.25)).abs() < 1e-6,
                "element {i}"
            );
        }
        // Bad launches are errors that name the kernel.
        let too_big = LaunchConfig {
            grid: (1, 1, 1),
            block: (2048, 1, 1),
            shared_mem_bytes: 0,
        };
        let e = enc
            .dispatch_kernel("user_axpb", too_big, &args)
            .unwrap_err();
        assert!(e.to_string().contains("user_axpb"), "{e}");
        let smem = LaunchConfig {
            shared_mem_bytes: 10 << 20,
            ..LaunchConfig::linear(1, 32)
        };
        let e = enc.dispatch_kernel("user_axpb", smem, &args).unwrap_err();
        assert!(e.to_string().contains("shared memory"), "{e}");
        assert!(enc
            .dispatch_kernel("user_axpb", LaunchConfig::linear(0, 32), &args)
            .is_err());
        // So are argument lists that do not match the kernel's parameters
        // (where the driver reports them: CUDA 12.4 and newer).
        let pipeline = dev.registry().get_pipeline("user_axpb").unwrap();
        if let Some(sizes) = pipeline.param_sizes() {
            assert_eq!(sizes, [8, 8, 8, std::mem::size_of_val(&p), 4]);
            let one = LaunchConfig::linear(1, 32);
            let e = enc
                .dispatch_kernel("user_axpb", one, &args[..4])
                .unwrap_err();
            assert!(
                e.to_string()
                    .contains("4 arguments given, the kernel takes 5"),
                "{e}"
            );
            let wide = n as u64;
            let mut wrong = args.to_vec();
            wrong[4] = KernelArg::pod(&wide);
            let e = enc.dispatch_kernel("user_axpb", one, &wrong).unwrap_err();
            assert!(e.to_string().contains("argument 4 is 8 bytes"), "{e}");
        } else {
            eprintln!("the driver predates cuFuncGetParamInfo: argument lists are not checked");
        }
        // A CPU buffer cannot be bound to a CUDA kernel.
        let host = MlxBuffer::zeros(&MlxDevice::cpu(), DType::F32, &[4]).unwrap();
        let args = [
            KernelArg::Buffer(&host),
            KernelArg::Buffer(&y),
            KernelArg::Buffer(&out),
            KernelArg::pod(&p),
            KernelArg::pod(&n),
        ];
        let e = enc
            .dispatch_kernel("user_axpb", LaunchConfig::linear(1, 32), &args)
            .unwrap_err();
        assert!(matches!(e, MlxError::DeviceMismatch { .. }), "{e}");
        let mut e2 = dev.command_encoder().unwrap();
        assert!(matches!(
            scale(&mut e2, &host, &out, 1.0).unwrap_err(),
            MlxError::DeviceMismatch { .. }
        ));
    }

    #[test]
    #[ignore = "needs a CUDA GPU: run with --include-ignored"]
    fn compile_errors_name_the_kernel_and_carry_the_log() {
        let dev = cuda_device();
        dev.registry()
            .register_source(
                "user_broken",
                "extern \"C\" __global__ void user_broken() { undefined_thing(); }",
            )
            .unwrap();
        match dev.registry().get_pipeline("user_broken").unwrap_err() {
            MlxError::KernelCompile { module, log, .. } => {
                assert_eq!(module, "user_broken");
                assert!(log.contains("undefined_thing"), "{log}");
            }
            e => panic!("expected a compile error, got {e}"),
        }
        assert!(matches!(
            dev.registry().get_pipeline("nope").unwrap_err(),
            MlxError::KernelNotFound(_)
        ));
    }

    #[test]
    #[ignore = "needs a CUDA GPU: run with --include-ignored"]
    fn threads_loading_a_kernel_at_once_share_one_pipeline() {
        let dev = cuda_device();
        let r = KernelRegistry::new(&dev, None).unwrap();
        let start = std::sync::Barrier::new(8);
        let got: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        r.get_pipeline("fill_b32").unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let again = r.get_pipeline("fill_b32").unwrap();
        assert!(got.iter().all(|p| Arc::ptr_eq(p, &again)));
    }

    #[test]
    #[ignore = "needs a CUDA GPU: run with --include-ignored"]
    fn disk_cache_then_memory_cache() {
        let dev = cuda_device();
        let dir = std::env::temp_dir().join(format!("mlxn-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cold = KernelRegistry::new(&dev, Some(dir.clone())).unwrap();
        cold.get_pipeline("fill_b32").unwrap();
        assert_eq!((cold.stats().compiles, cold.stats().disk_hits), (1, 0));
        cold.get_pipeline("fill_b8").unwrap();
        assert_eq!(cold.stats().compiles, 1, "same module, compiled once");
        let warm = KernelRegistry::new(&dev, Some(dir.clone())).unwrap();
        warm.get_pipeline("fill_b32").unwrap();
        assert_eq!((warm.stats().compiles, warm.stats().disk_hits), (0, 1));
        warm.get_pipeline("fill_b32").unwrap();
        assert_eq!(warm.stats().memory_hits, 1);
        // A corrupt cache file is recompiled, not trusted.
        for f in std::fs::read_dir(&dir).unwrap() {
            std::fs::write(f.unwrap().path(), b"garbage").unwrap();
        }
        let again = KernelRegistry::new(&dev, Some(dir.clone())).unwrap();
        again.get_pipeline("fill_b32").unwrap();
        assert_eq!(again.stats().compiles, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    #[ignore = "needs a CUDA GPU: run with --include-ignored"]
    fn every_builtin_kernel_compiles() {
        let dev = cuda_device();
        let r = KernelRegistry::new(&dev, None).unwrap();
        r.precompile_all().unwrap();
        assert!(r.kernel_names().len() >= 25);
        let info = mlx_native::kernels::nvrtc_info().unwrap();
        assert!(info.version.0 >= 12, "{info:?}");
    }
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<MlxDevice>();
    send_sync::<MlxBuffer>();
    send_sync::<KernelRegistry>();
    send_sync::<mlx_native::Pipeline>();
    send_sync::<mlx_native::MlxEvent>();
    fn send<T: Send>() {}
    send::<mlx_native::CommandEncoder>();
    send::<MlxBufferPool>();
}
