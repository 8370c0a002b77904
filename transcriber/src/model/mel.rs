//! Whisper's mel filterbank, computed rather than downloaded: what `librosa.filters.mel(sr=16000,
//! n_fft=400, n_mels=80)` returns (Slaney's mel scale and area normalization), which is what
//! OpenAI's `mel_filters.npz` holds and what whisper.cpp reads from the model file.

pub const SAMPLE_RATE: f64 = 16_000.0;
pub const N_FFT: usize = 400;

/// `n_mels` rows of `N_FFT / 2 + 1` weights, row-major.
pub fn filterbank(n_mels: usize) -> Vec<f32> {
    let bins = N_FFT / 2 + 1;
    let fft_freqs: Vec<f64> = (0..bins)
        .map(|i| i as f64 * (SAMPLE_RATE / 2.0) / (bins - 1) as f64)
        .collect();
    let (low, high) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2.0));
    let mel_freqs: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(low + (high - low) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut weights = Vec::with_capacity(n_mels * bins);
    for m in 0..n_mels {
        let (left, centre, right) = (mel_freqs[m], mel_freqs[m + 1], mel_freqs[m + 2]);
        // Slaney normalization: each triangle has unit area in Hz.
        let norm = 2.0 / (right - left);
        for &f in &fft_freqs {
            let rising = (f - left) / (centre - left);
            let falling = (right - f) / (right - centre);
            weights.push((rising.min(falling).max(0.0) * norm) as f32);
        }
    }
    weights
}

// Slaney's scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        mel * F_SP
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_round_trips_and_is_continuous_at_1khz() {
        for hz in [0.0, 440.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9);
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
    }

    #[test]
    fn matches_librosa_at_known_points() {
        // By hand: 81 mel steps of 0.5586 put row 0 at 0, 37.24 and 74.48 Hz; bin 1 (40 Hz)
        // falls on its right slope: (74.48 - 40) / 37.24 * 2 / 74.48. librosa and OpenAI's
        // mel_filters.npz give 0.0248626 there too.
        let w = filterbank(80);
        let bins = N_FFT / 2 + 1;
        assert_eq!(w.len(), 80 * bins);
        assert!((w[1] - 0.024_862_59).abs() < 1e-6, "{}", w[1]);
        assert_eq!(w[0], 0.0);
        let last = &w[79 * bins..];
        let peak = last.iter().cloned().fold(0.0f32, f32::max);
        assert!(peak > 0.0 && last[..150].iter().all(|&x| x == 0.0));
    }
}
