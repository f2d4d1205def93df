"""Figures without side effects: pyplot only when nothing is saved (notebooks show it),
a bare matplotlib Figure otherwise (no backend switch, nothing left open)."""


def new_figure(size, path, what):
    """A matplotlib Figure of ``size`` inches; ImportError naming ``what`` without
    matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(f"{what} needs matplotlib: pip install 'fastmlp[plot]'") from None
    if path is None:
        import matplotlib.pyplot as plt
        return plt.figure(figsize=size)
    from matplotlib.figure import Figure
    return Figure(figsize=size)


def finish_axes(ax, title=None, xlabel=None, ylabel=None, legend=True):
    """Title, labels, legend and a light grid."""
    if title:
        ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if legend:
        ax.legend()
    ax.grid(alpha=0.3)


def finish_figure(fig, path):
    """Lay out; save a PNG to ``path`` when given; return the figure."""
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
