"""What ComfyUI itself does, written down once: the rules and messages of the real server that
both the emulator (which reproduces them) and the client's pre-submit check (which predicts them)
follow.

Owns facts about ComfyUI, not about either side: nothing here imports ``comfy_nb.emulator``,
``comfy_nb.client`` or ``comfy_nb.workflow``, speaks HTTP, or touches a server's folders beyond
what ComfyUI's own rule reads.
"""
