"""The real `openai` Python client against a running `saffron serve`.

usage: openai_client.py PORT MODEL API_KEY   (exits non-zero on failure)
"""

import sys

import openai

port, model, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
base = f"http://127.0.0.1:{port}/v1"
client = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
messages = [{"role": "user", "content": "Name three colours."}]
defence = {"saffron": {"strategy": "saffron", "width": 4}}

assert [m.id for m in client.models.list()] == [model]

whole = client.chat.completions.create(model=model, messages=messages, max_tokens=12, seed=7, extra_body=defence)
answer = whole.choices[0].message.content
assert answer, whole
assert whole.choices[0].finish_reason in ("stop", "length"), whole
assert whole.usage.completion_tokens > 0 and whole.usage.prompt_tokens > 0, whole.usage
report = whole.model_extra["saffron"]
assert report["strategy"] == "saffron" and report["width"] == 4, report
assert report["tflop"] > 0 and report["reward_calls"] > 0, report

stream = client.chat.completions.create(
    model=model, messages=messages, max_tokens=12, seed=7, extra_body=defence,
    stream=True, stream_options={"include_usage": True},
)
pieces, usage, finish = [], None, None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
        finish = choice.finish_reason or finish
assert "".join(pieces) == answer, (pieces, answer)
assert finish == whole.choices[0].finish_reason, finish
assert usage.completion_tokens == whole.usage.completion_tokens, usage

text = client.completions.create(model=model, prompt="The capital of France is", max_tokens=6,
                                 extra_body={"saffron": {"strategy": "sample"}})
assert text.choices[0].text, text

try:
    client.chat.completions.create(model=model, messages=messages, extra_body={"saffron": {"wdth": 4}})
    raise SystemExit("an unknown extension field was accepted")
except openai.BadRequestError as e:
    assert "wdth" in str(e), e
try:
    client.chat.completions.create(model=model, messages=messages, max_tokens=10**6)
    raise SystemExit("max_tokens over the limit was accepted")
except openai.BadRequestError as e:
    assert "max_tokens" in str(e), e
try:
    client.chat.completions.create(model="gpt-4", messages=messages)
    raise SystemExit("another model was accepted")
except openai.NotFoundError:
    pass
try:
    openai.OpenAI(base_url=base, api_key="wrong", max_retries=0).models.list()
    raise SystemExit("a wrong key was accepted")
except openai.AuthenticationError:
    pass
print("openai client: ok")
