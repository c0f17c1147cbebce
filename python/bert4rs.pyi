"""Type stubs of the bert4rs extension module."""

from typing import Any, Dict, List, Optional, Sequence, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str

class SentenceEncoder:
    """Sentence embeddings, as sentence-transformers' SentenceTransformer."""

    def __init__(self, path: str, threads: Optional[int] = None, int8: bool = False,
                 dtype: str = "f32", int8_activations: Optional[int] = None) -> None: ...
    @overload
    def encode(self, sentences: str, batch_size: int = 32,
               normalize_embeddings: Optional[bool] = None, pooling: Optional[str] = None,
               show_progress_bar: Optional[bool] = None,
               convert_to_numpy: bool = True) -> npt.NDArray[np.float32]: ...
    @overload
    def encode(self, sentences: Sequence[str], batch_size: int = 32,
               normalize_embeddings: Optional[bool] = None, pooling: Optional[str] = None,
               show_progress_bar: Optional[bool] = None,
               convert_to_numpy: bool = True) -> npt.NDArray[np.float32]: ...
    def get_sentence_embedding_dimension(self) -> int: ...

class Classifier:
    """A fine-tuned classifier directory: a sequence model predicts, a token model tags."""

    def __init__(self, path: str, int8: bool = False, dtype: str = "f32",
                 int8_activations: Optional[int] = None) -> None: ...
    @property
    def labels(self) -> List[str]: ...
    @overload
    def predict(self, texts: str, max_length: int = 128, batch_size: int = 64,
                early_exit_entropy: Optional[float] = None) -> Dict[str, Any]: ...
    @overload
    def predict(self, texts: Sequence[str], max_length: int = 128, batch_size: int = 64,
                early_exit_entropy: Optional[float] = None) -> List[Dict[str, Any]]: ...
    @overload
    def tag(self, texts: str, max_length: int = 128,
            batch_size: int = 32) -> List[Dict[str, Any]]: ...
    @overload
    def tag(self, texts: Sequence[str], max_length: int = 128,
            batch_size: int = 32) -> List[List[Dict[str, Any]]]: ...

class Tagger:
    """A fine-tuned token-classification (NER) directory."""

    def __init__(self, path: str, int8: bool = False,
                 int8_activations: Optional[int] = None) -> None: ...
    @overload
    def tag(self, texts: str, max_length: int = 128,
            batch_size: int = 32) -> List[Dict[str, Any]]: ...
    @overload
    def tag(self, texts: Sequence[str], max_length: int = 128,
            batch_size: int = 32) -> List[List[Dict[str, Any]]]: ...

class Generator:
    """Text generation with a GPT-2 directory."""

    def __init__(self, path: str, tokenizer: Optional[str] = None) -> None: ...
    def generate(self, prompt: str, max_new_tokens: int = 20, num_beams: int = 1,
                 do_sample: bool = False, temperature: float = 1.0, top_k: int = 50,
                 top_p: float = 1.0, repetition_penalty: float = 1.0,
                 no_repeat_ngram_size: int = 0, num_return_sequences: int = 1,
                 seed: int = 0, eos_token_id: Optional[int] = None) -> Union[str, List[str]]: ...

class Tokenizer:
    """A tokenizer directory, called as an HF tokenizer is (numpy int64 arrays)."""

    def __init__(self, path: str, int8: bool = False,
                 int8_activations: Optional[int] = None) -> None: ...
    def __call__(self, text: Union[str, Sequence[str]],
                 text_pair: Optional[Union[str, Sequence[str]]] = None,
                 padding: Optional[Union[bool, str]] = None,
                 truncation: Optional[Union[bool, str]] = None,
                 max_length: Optional[int] = None) -> Dict[str, Any]: ...
    @property
    def vocab_size(self) -> int: ...
    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str: ...

def quantize(model: str, output: str, int8_activations: int = 12) -> Dict[str, Any]:
    """Writes an int8 copy of a BERT-family model directory (what ``int8=True`` runs,
    saved); every class and command loads it as it loads the f32 one."""
    ...

def train(config_path: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None,
          resume: bool = False) -> Dict[str, Any]: ...
