"""The account pool of one tool home, as small modules with one job each.

``layout`` names every file of a home; ``store`` is the only way to change the pool's
state (a locked transaction); ``slots`` reads the account files; ``pointer`` keeps the
tool's own credential path linked to the active slot and adopts what the tool wrote
there; ``select`` chooses accounts (pure); ``marking`` turns an outcome into state;
``rotation`` and ``accounts`` are the named transactions; ``upkeep`` repairs and reaps;
``views`` is what the pool reports. :class:`credrot.manager.AccountManager` is the facade.
"""
