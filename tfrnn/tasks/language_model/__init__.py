"""The character-level language model task: a prediction at every step of a
text stream, trained with truncated backpropagation through time (the state
carried from chunk to chunk, the gradient not), evaluated in bits per
character on held-out text read as a stream.

`config` (its flags), `data` (text -> ids -> parallel streams -> chunks),
`models` (ids and state in, logits and state out), `task` (the `Task`).
"""
