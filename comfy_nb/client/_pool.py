"""Pools: several servers behind one client (:class:`AsyncPool`, :class:`Pool`).

A pool is an :class:`~comfy_nb.AsyncClient` made of pool parts (the seam of
:mod:`comfy_nb.client._parts`): a :class:`PoolServer` and :class:`PoolRuns` that delegate to one
ordinary, unchanged AsyncClient per member. So a pool has the client's whole interface (``run``,
``submit``, ``queue``, ``cancel``, ``upload_image``, ``object_info``...), and the synchronous
:class:`Pool` is a :class:`~comfy_nb.Client` over it, which is what sweeps, ``interact`` and the
magics already drive.

Composition. Each member is a full client of its own server: its own connection (dialect found
by the member, its own websocket, retries, submission that is never sent twice), its own key
(resolved for that member alone, so the Cloud key goes only to Comfy Cloud and a v2 token only
to its origin; see :func:`member_keys`), its own run pipeline, uploads and node-definition copy.
A job is an ordinary :class:`~comfy_nb.job.AsyncJob` hosted by the member that runs it: it knows
only that host (:mod:`comfy_nb.client._host`), so its events, reads, cancel and Result (whose
``server`` names the member) need nothing from the pool. Submitted jobs reach the
:data:`~comfy_nb.client._runs.job_observers` (ledger, recordings) through the member's client.
Nothing of a member's client is reached into: the pool uses its public methods only.

Scheduling. Every member has a capacity: how many jobs it runs at once (a local ComfyUI 1, Comfy
Cloud its tier's limit, a v2 deployment its limit; the client cannot read a tier, so
``capacity={url: n}`` says it, and 1 is assumed). A job goes to the compatible member that will
start it soonest: the one with the fewest jobs ahead of it per slot, counting the jobs this pool
placed there and not yet ended, and the queue length the member's websocket last reported
(other users' jobs), whichever is larger. A member with a free slot wins over any queue, so a
local server gets a second job only when every member is busy; ties go to the member named
first. The choice is made and counted before the submission is awaited, so jobs submitted at
once (a sweep) spread instead of all seeing the same idle member.

Routing. Before a job is placed, its requirements are read from the workflow (its node classes,
and the model files it names in the inputs a server lists its files for, such as ``ckpt_name``;
see :mod:`comfy_nb.client._pool_routing`) and checked against each member's node definitions
(read once per member and kept by its client). Only members having all of them are candidates;
when none has, :class:`~comfy_nb.client._pool_routing.NoMemberCanRun` says, member by member,
what it lacks. Uploads then happen inside the chosen member's own submission: a file goes to the
member that runs the job and nowhere else, each content once per member.

Failover (the plan, not built yet). A member that stops answering is taken out of the choice
(its websocket and reads say so: ``socket_connected``, a job's ``unreachable_for``); a job still
pending there is cancelled on it when it comes back and placed elsewhere, a running job that was
lost is submitted once more elsewhere, and the Result's ``server`` says where it ran. A job is
never run twice on purpose: a job whose first member might still finish it (its submission
uncertain, its server gone mid-run) is reported as such instead of silently repeated. The
cleanest way to make "pending jobs move" exact is to keep a pool-side queue, placing a job on a
member only when a slot there is free, so a member that disappears holds only its running jobs;
that needs a job object that exists before it has a server, the next step of this module.
"""
