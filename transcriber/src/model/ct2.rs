//! CTranslate2's model spec format (`model.bin`, binary version 6), as its `models/model.cc`
//! reads it: a header, then named variables (name, rank, dims, dtype, byte count, bytes),
//! then aliases that name one variable twice (Whisper's output projection is the token
//! embedding).

use std::collections::HashMap;

use half::f16;

#[derive(Debug, thiserror::Error)]
pub enum Ct2Error {
    #[error("model.bin ends early at byte {0}")]
    Truncated(usize),
    #[error("model.bin is binary version {0}; this reader knows version 6")]
    Version(u32),
    #[error("model.bin holds a {0}, not a WhisperSpec")]
    Spec(String),
    #[error("variable {0} is missing")]
    Missing(String),
    #[error("variable {name} has dtype {dtype}; only float16 and float32 weights convert")]
    Dtype { name: String, dtype: u8 },
    #[error("variable {name} has shape {shape:?}, expected {expected}")]
    Shape {
        name: String,
        shape: Vec<usize>,
        expected: String,
    },
    #[error("a name in model.bin is not UTF-8")]
    Name,
}

/// CTranslate2's `DataType` numbering.
const FLOAT32: u8 = 0;
const INT8: u8 = 1;
const INT16: u8 = 2;
const FLOAT16: u8 = 4;

pub struct Variable<'a> {
    pub shape: Vec<usize>,
    dtype: u8,
    bytes: &'a [u8],
}

impl Variable<'_> {
    /// The values as f32, whatever float type they are stored in.
    pub fn to_f32(&self, name: &str) -> Result<Vec<f32>, Ct2Error> {
        match self.dtype {
            FLOAT16 => Ok(self
                .bytes
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect()),
            FLOAT32 => Ok(self
                .bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()),
            dtype => Err(Ct2Error::Dtype {
                name: name.to_owned(),
                dtype,
            }),
        }
    }

    /// A scalar integer attribute (`num_heads`), stored as int8 or int16.
    fn to_int(&self) -> Option<i64> {
        match (self.dtype, self.bytes) {
            (INT8, [b]) => Some(i64::from(*b as i8)),
            (INT16, [a, b]) => Some(i64::from(i16::from_le_bytes([*a, *b]))),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct Model<'a> {
    variables: HashMap<String, Variable<'a>>,
}

impl<'a> Model<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Ct2Error> {
        let mut r = Reader { bytes, at: 0 };
        let version = r.u32()?;
        if version != 6 {
            return Err(Ct2Error::Version(version));
        }
        let spec = r.string()?;
        if spec != "WhisperSpec" {
            return Err(Ct2Error::Spec(spec));
        }
        let _revision = r.u32()?;
        let count = r.u32()?;
        let mut variables = HashMap::with_capacity(count as usize);
        for _ in 0..count {
            let name = r.string()?;
            let rank = r.u8()?;
            let shape = (0..rank)
                .map(|_| r.u32().map(|d| d as usize))
                .collect::<Result<Vec<_>, _>>()?;
            let dtype = r.u8()?;
            let len = r.u32()? as usize;
            let bytes = r.take(len)?;
            variables.insert(
                name,
                Variable {
                    shape,
                    dtype,
                    bytes,
                },
            );
        }
        let aliases = r.u32()?;
        for _ in 0..aliases {
            let alias = r.string()?;
            let target = r.string()?;
            if let Some(v) = variables.get(&target) {
                let copy = Variable {
                    shape: v.shape.clone(),
                    dtype: v.dtype,
                    bytes: v.bytes,
                };
                variables.insert(alias, copy);
            }
        }
        Ok(Self { variables })
    }

    pub fn get(&self, name: &str) -> Result<&Variable<'a>, Ct2Error> {
        self.variables
            .get(name)
            .ok_or_else(|| Ct2Error::Missing(name.to_owned()))
    }

    /// A variable's values with its shape checked.
    pub fn floats(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, Ct2Error> {
        let v = self.get(name)?;
        if v.shape != shape {
            return Err(Ct2Error::Shape {
                name: name.to_owned(),
                shape: v.shape.clone(),
                expected: format!("{shape:?}"),
            });
        }
        v.to_f32(name)
    }

    pub fn int(&self, name: &str) -> Result<i64, Ct2Error> {
        let v = self.get(name)?;
        v.to_int().ok_or_else(|| Ct2Error::Dtype {
            name: name.to_owned(),
            dtype: v.dtype,
        })
    }

    /// How many `<prefix>/layer_<n>` blocks there are.
    pub fn layers(&self, prefix: &str) -> usize {
        (0..)
            .take_while(|n| {
                let key = format!("{prefix}/layer_{n}/ffn/linear_0/weight");
                self.variables.contains_key(&key)
            })
            .count()
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Ct2Error> {
        let end = self.at.checked_add(n).ok_or(Ct2Error::Truncated(self.at))?;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or(Ct2Error::Truncated(self.at))?;
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, Ct2Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Ct2Error> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Ct2Error> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A u16 length that counts the trailing NUL, then the bytes.
    fn string(&mut self) -> Result<String, Ct2Error> {
        let len = self.u16()? as usize;
        let raw = self.take(len)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| Ct2Error::Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    #[test]
    fn reads_variables_scalars_and_aliases() {
        let mut b = 6u32.to_le_bytes().to_vec();
        string(&mut b, "WhisperSpec");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        string(&mut b, "encoder/num_heads");
        b.extend_from_slice(&[0, INT16, 2, 0, 0, 0, 6, 0]);
        string(&mut b, "w");
        b.extend_from_slice(&[2, 1, 0, 0, 0, 2, 0, 0, 0, FLOAT16, 4, 0, 0, 0]);
        b.extend_from_slice(&f16::from_f32(1.5).to_le_bytes());
        b.extend_from_slice(&f16::from_f32(-2.0).to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        string(&mut b, "alias");
        string(&mut b, "w");
        let model = Model::parse(&b).unwrap();
        assert_eq!(model.int("encoder/num_heads").unwrap(), 6);
        assert_eq!(model.floats("w", &[1, 2]).unwrap(), vec![1.5, -2.0]);
        assert_eq!(model.floats("alias", &[1, 2]).unwrap(), vec![1.5, -2.0]);
        assert!(matches!(
            model.floats("w", &[2]),
            Err(Ct2Error::Shape { .. })
        ));
        assert!(matches!(
            Model::parse(&b[..b.len() - 3]),
            Err(Ct2Error::Truncated(_))
        ));
    }
}
