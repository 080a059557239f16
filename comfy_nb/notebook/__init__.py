"""The notebook layer: magics (:mod:`.magics`), progress panels (:mod:`.progress`) and inline
rendering of results (:mod:`.display`). It sits on top of the client and never speaks HTTP."""
