"""The request bodies every route accepts, as pydantic models: checked before any work (strict
types: no "yes" for a bool, no 1.5 for an int; unknown fields refused, so a typo is a 422 and
not a silently ignored option) and shown on /docs. Field names are those of
text-embeddings-inference, OpenAI and the Hugging Face inference API."""
from __future__ import annotations

from typing import Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

Text = StrictStr
TokenIds = List[StrictInt]
PositiveInt = Optional[StrictInt]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Truncation(Strict):
    truncate: Optional[StrictBool] = Field(None, description="cut long inputs (default: --auto-truncate)")
    truncation_direction: Literal["right", "left", "Right", "Left"] = Field(
        "right", description="which end of a long input is cut")

    @field_validator("truncation_direction")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


# -- text-embeddings-inference ----------------------------------------------------------------------
class EmbedRequest(Truncation):
    inputs: Union[Text, List[Text], TokenIds, List[TokenIds]] = Field(
        ..., description="a text, a list of texts, or token ids as /tokenize gives them")
    normalize: StrictBool = True
    dimensions: PositiveInt = Field(None, description="keep the first N dimensions (then normalize)")
    prompt_name: Optional[Text] = None


class PredictRequest(Truncation):
    inputs: Union[Text, List[Text], List[List[Text]]] = Field(
        ..., description='a text, a pair ["a", "b"], or a list of texts / [a] / [a, b]')
    raw_scores: StrictBool = False


class RerankRequest(Truncation):
    query: Text
    texts: List[Text]
    raw_scores: StrictBool = False
    return_text: StrictBool = False


class SimilarityInputs(Strict):
    source_sentence: Text
    sentences: List[Text]


class SimilarityParameters(Truncation):
    prompt_name: Optional[Text] = None


class SimilarityRequest(Strict):
    inputs: SimilarityInputs
    parameters: Optional[SimilarityParameters] = None


class TokenizeRequest(Strict):
    inputs: Union[Text, List[Text]]
    add_special_tokens: StrictBool = True
    prompt_name: Optional[Text] = None


class DecodeRequest(Strict):
    ids: Union[TokenIds, List[TokenIds]]
    skip_special_tokens: StrictBool = True


# -- OpenAI -------------------------------------------------------------------------------------------
class EmbeddingsRequest(Strict):
    input: Union[Text, List[Text], TokenIds, List[TokenIds]]
    model: Optional[Text] = Field(None, description="accepted and ignored: one model per server")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: PositiveInt = None
    user: Optional[Text] = None


# -- the Hugging Face inference API (POST /) --------------------------------------------------------
class InferenceRequest(Strict):
    """``{"inputs": ..., "parameters": {...}}``; feature-extraction's options come at the top
    level (as ``huggingface_hub`` sends them)."""

    inputs: Union[Text, List[Text], Dict[Text, Union[Text, List[Text]]],
                  List[Dict[Text, Text]]]
    parameters: Optional[Dict[Text, object]] = None
    normalize: Optional[StrictBool] = None
    truncate: Optional[StrictBool] = None
    truncation_direction: Optional[Literal["right", "left", "Right", "Left"]] = None
    dimensions: PositiveInt = None
    prompt_name: Optional[Text] = None
    encoding_format: Optional[Literal["float"]] = None


class TextClassificationParameters(Strict):
    function_to_apply: Optional[Literal["softmax", "sigmoid", "none"]] = None
    top_k: PositiveInt = None


class TokenClassificationParameters(Strict):
    aggregation_strategy: Literal["none", "simple", "first", "average", "max"] = "simple"
    ignore_labels: Optional[List[Text]] = None
    stride: Optional[Literal[0]] = Field(None, description="long texts are truncated, not strided")


class FillMaskParameters(Strict):
    top_k: StrictInt = 5
    targets: Optional[Union[Text, List[Text]]] = None


class QuestionAnsweringParameters(Strict):
    top_k: StrictInt = 1
    doc_stride: PositiveInt = None
    max_answer_len: StrictInt = 15
    max_seq_len: PositiveInt = None
    handle_impossible_answer: StrictBool = False
    align_to_words: StrictBool = True
    max_question_len: PositiveInt = Field(None, description="accepted; questions are not cut "
                                                            "(as transformers' pipeline)")


class QuestionAnsweringInput(Strict):
    question: Text
    context: Text


class TextPair(Strict):
    text: Text
    text_pair: Optional[Text] = None


class FeatureExtractionParameters(Truncation):
    normalize: Optional[StrictBool] = None
    dimensions: PositiveInt = None
    prompt_name: Optional[Text] = None
