//! Host side of each kernel: buffers, chunking, dispatch and read-back.
//!
//! Every call allocates its buffers once, sized to one chunk, and walks the vector chunk by
//! chunk: upload, dispatch, copy to a mappable buffer, read back. A chunk that starts at word
//! `w` starts its keystreams at block `w / 16` (chunks are whole blocks), which is why chunking
//! never changes a result.

use super::pipelines::scoped;
use super::{GpuError, GpuKernels, workgroups_for};
use crate::{KernelError, Mask, QuantParams, RoundingStream, Sign};
use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MaskUniform {
    len: u32,
    block_lo: u32,
    block_hi: u32,
    n_masks: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct QuantUniform {
    key_lo: [u32; 4],
    key_hi: [u32; 4],
    len: u32,
    block_lo: u32,
    block_hi: u32,
    stream_lo: u32,
    stream_hi: u32,
    range: f32,
    scale: f32,
    top: f32,
    pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SumUniform {
    len: u32,
    count: u32,
    pad: [u32; 2],
}

/// No non-finite input seen: the initial value of the quantiser's status word.
const STATUS_CLEAN: u32 = u32::MAX;

pub(super) fn masks(k: &GpuKernels, out: &mut [u32], masks: &[Mask]) -> Result<(), GpuError> {
    let kernel = "mask";
    scoped(&k.device, kernel, || {
        let chunk = k.chunk_words.min(out.len());
        let data = storage(k, "mask data", chunk);
        let staging = readback(k, chunk);
        let masker = Masker::new(k, masks, &data);
        for (i, slice) in out.chunks_mut(chunk).enumerate() {
            k.queue.write_buffer(&data, 0, bytemuck::cast_slice(slice));
            let mut enc = k.device.create_command_encoder(&Default::default());
            masker.encode(k, &mut enc, i * chunk, slice.len());
            enc.copy_buffer_to_buffer(&data, 0, &staging, 0, bytes(slice.len()));
            k.queue.submit([enc.finish()]);
            read_back(k, kernel, &staging, slice)?;
        }
        Ok(())
    })
}

pub(super) fn quantise_and_mask(
    k: &GpuKernels,
    input: &[f32],
    params: &QuantParams,
    rounding: &RoundingStream,
    masks: &[Mask],
    out: &mut [u32],
) -> Result<(), GpuError> {
    let kernel = "quantise";
    scoped(&k.device, kernel, || {
        let chunk = k.chunk_words.min(input.len());
        let input_buf = storage(k, "quantise input", chunk);
        let data = storage(k, "quantised data", chunk);
        let staging = readback(k, chunk);
        let status = storage(k, "quantise status", 1);
        let status_staging = readback(k, 1);
        let uniform = uniform(k, std::mem::size_of::<QuantUniform>());
        let bind = k.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel),
            layout: &k.pipelines.quantise.get_bind_group_layout(0),
            entries: &[
                entry(0, &uniform),
                entry(1, &input_buf),
                entry(2, &data),
                entry(3, &status),
            ],
        });
        let masker = (!masks.is_empty()).then(|| Masker::new(k, masks, &data));
        let (key_lo, key_hi) = key_words(&rounding.seed);
        for (i, (xs, slice)) in input.chunks(chunk).zip(out.chunks_mut(chunk)).enumerate() {
            let start = i * chunk;
            let (block_lo, block_hi) = split(start_block(start));
            let u = QuantUniform {
                key_lo,
                key_hi,
                len: word_count(xs.len()),
                block_lo,
                block_hi,
                stream_lo: rounding.stream as u32,
                stream_hi: (rounding.stream >> 32) as u32,
                range: params.range(),
                scale: params.scale(),
                top: params.top(),
                pad: [0; 2],
            };
            k.queue.write_buffer(&uniform, 0, bytemuck::bytes_of(&u));
            k.queue
                .write_buffer(&input_buf, 0, bytemuck::cast_slice(xs));
            k.queue
                .write_buffer(&status, 0, bytemuck::bytes_of(&STATUS_CLEAN));
            let mut enc = k.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&k.pipelines.quantise);
                pass.set_bind_group(0, &bind, &[]);
                pass.dispatch_workgroups(workgroups_for(xs.len()), 1, 1);
            }
            if let Some(masker) = &masker {
                masker.encode(k, &mut enc, start, xs.len());
            }
            enc.copy_buffer_to_buffer(&status, 0, &status_staging, 0, 4);
            enc.copy_buffer_to_buffer(&data, 0, &staging, 0, bytes(xs.len()));
            k.queue.submit([enc.finish()]);
            let mut flag = [STATUS_CLEAN];
            read_back(k, kernel, &status_staging, &mut flag)?;
            if flag[0] != STATUS_CLEAN {
                let index = start + flag[0] as usize;
                let value = input.get(index).copied().unwrap_or(f32::NAN);
                return Err(KernelError::NonFinite { index, value }.into());
            }
            read_back(k, kernel, &staging, slice)?;
        }
        Ok(())
    })
}

pub(super) fn sum(k: &GpuKernels, acc: &mut [u32], vectors: &[&[u32]]) -> Result<(), GpuError> {
    let kernel = "sum";
    scoped(&k.device, kernel, || {
        let chunk = k.chunk_words.min(acc.len());
        // As many vectors per dispatch as fit one storage binding.
        let group = (k.chunk_words / chunk).clamp(1, vectors.len());
        let acc_buf = storage(k, "sum accumulator", chunk);
        let inputs = storage(k, "sum inputs", group * chunk);
        let staging = readback(k, chunk);
        let uniform = uniform(k, std::mem::size_of::<SumUniform>());
        let bind = k.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel),
            layout: &k.pipelines.sum.get_bind_group_layout(0),
            entries: &[entry(0, &uniform), entry(1, &inputs), entry(2, &acc_buf)],
        });
        for (i, slice) in acc.chunks_mut(chunk).enumerate() {
            let start = i * chunk;
            let len = slice.len();
            k.queue
                .write_buffer(&acc_buf, 0, bytemuck::cast_slice(slice));
            for batch in vectors.chunks(group) {
                for (j, v) in batch.iter().enumerate() {
                    let part = &v[start..start + len];
                    k.queue
                        .write_buffer(&inputs, bytes(j * len), bytemuck::cast_slice(part));
                }
                let u = SumUniform {
                    len: word_count(len),
                    count: word_count(batch.len()),
                    pad: [0; 2],
                };
                k.queue.write_buffer(&uniform, 0, bytemuck::bytes_of(&u));
                let mut enc = k.device.create_command_encoder(&Default::default());
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&k.pipelines.sum);
                    pass.set_bind_group(0, &bind, &[]);
                    pass.dispatch_workgroups(workgroups_for(len), 1, 1);
                }
                k.queue.submit([enc.finish()]);
            }
            let mut enc = k.device.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(&acc_buf, 0, &staging, 0, bytes(len));
            k.queue.submit([enc.finish()]);
            read_back(k, kernel, &staging, slice)?;
        }
        Ok(())
    })
}

/// The mask kernel bound to a data buffer, ready to be encoded chunk after chunk.
struct Masker {
    bind: wgpu::BindGroup,
    uniform: wgpu::Buffer,
    n_masks: u32,
}

impl Masker {
    fn new(k: &GpuKernels, masks: &[Mask], data: &wgpu::Buffer) -> Self {
        let words: Vec<u32> = masks.iter().flat_map(mask_words).collect();
        let mask_buf = k
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("masks"),
                contents: bytemuck::cast_slice(&words),
                usage: wgpu::BufferUsages::STORAGE,
            });
        let uniform = uniform(k, std::mem::size_of::<MaskUniform>());
        let bind = k.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("mask"),
            layout: &k.pipelines.mask.get_bind_group_layout(0),
            entries: &[entry(0, &uniform), entry(1, &mask_buf), entry(2, data)],
        });
        Self {
            bind,
            uniform,
            n_masks: word_count(masks.len()),
        }
    }

    /// Encodes the mask pass over `len` words of the data buffer, which hold vector words
    /// `start..start + len`. The uniform is written now and read when the queue runs the pass.
    fn encode(&self, k: &GpuKernels, enc: &mut wgpu::CommandEncoder, start: usize, len: usize) {
        let (block_lo, block_hi) = split(start_block(start));
        let u = MaskUniform {
            len: word_count(len),
            block_lo,
            block_hi,
            n_masks: self.n_masks,
        };
        k.queue
            .write_buffer(&self.uniform, 0, bytemuck::bytes_of(&u));
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&k.pipelines.mask);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(workgroups_for(len), 1, 1);
    }
}

/// A mask as the shader reads it: key words, stream halves, sign, padding.
fn mask_words(m: &Mask) -> [u32; 12] {
    let (lo, hi) = key_words(&m.seed);
    let sign = match m.sign {
        Sign::Add => 0,
        Sign::Sub => 1,
    };
    [
        lo[0],
        lo[1],
        lo[2],
        lo[3],
        hi[0],
        hi[1],
        hi[2],
        hi[3],
        m.stream as u32,
        (m.stream >> 32) as u32,
        sign,
        0,
    ]
}

/// The seed as the eight little-endian key words of the ChaCha state.
fn key_words(seed: &[u8; 32]) -> ([u32; 4], [u32; 4]) {
    let (words, _) = seed.as_chunks::<4>();
    let mut key = [0u32; 8];
    for (k, w) in key.iter_mut().zip(words) {
        *k = u32::from_le_bytes(*w);
    }
    (
        [key[0], key[1], key[2], key[3]],
        [key[4], key[5], key[6], key[7]],
    )
}

fn start_block(start_word: usize) -> u64 {
    (start_word / super::WORDS_PER_INVOCATION) as u64
}

fn split(v: u64) -> (u32, u32) {
    (v as u32, (v >> 32) as u32)
}

/// A length known to fit one chunk, which is below 2^32 words by construction.
fn word_count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn bytes(words: usize) -> u64 {
    (words * 4) as u64
}

fn storage(k: &GpuKernels, label: &str, words: usize) -> wgpu::Buffer {
    k.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes(words),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

fn readback(k: &GpuKernels, words: usize) -> wgpu::Buffer {
    k.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("read-back"),
        size: bytes(words),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

fn uniform(k: &GpuKernels, size: usize) -> wgpu::Buffer {
    k.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("params"),
        size: size as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}

/// Waits for the queue, maps the first `out.len()` words of `staging` and copies them out.
fn read_back(
    k: &GpuKernels,
    kernel: &'static str,
    staging: &wgpu::Buffer,
    out: &mut [u32],
) -> Result<(), GpuError> {
    let fail = |message: String| GpuError::Readback { kernel, message };
    let slice = staging.slice(..bytes(out.len()));
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        // The receiver waits below; a send error only means it gave up already.
        let _ = tx.send(r);
    });
    k.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| fail(e.to_string()))?;
    rx.recv()
        .map_err(|_| fail("the map callback never ran".into()))?
        .map_err(|e| fail(e.to_string()))?;
    {
        let view = slice.get_mapped_range().map_err(|e| fail(e.to_string()))?;
        let (words, _) = view.as_chunks::<4>();
        for (o, w) in out.iter_mut().zip(words) {
            *o = u32::from_ne_bytes(*w);
        }
    }
    staging.unmap();
    Ok(())
}
