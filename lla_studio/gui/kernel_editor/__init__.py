"""The kernel-graph editor, one module per part.

* :mod:`.editor` -- :class:`KernelGraphEditor`, the shell: toolbar, palette, canvas, properties, text
  box, undo stack, and the API the window and the tests drive;
* :mod:`.items` -- node, port and wire items and the layout geometry;
* :mod:`.canvas` -- the scene and the view (wiring gestures, drops, zoom);
* :mod:`.properties` -- the selected node's property panel;
* :mod:`.wizard` -- the hands-on kernel wizard;
* :mod:`.preview` -- prior samples of the kernel being edited;
* :mod:`.common` -- small widget helpers.

The draft document the editor edits, its analysis and its connect rules are Qt-free, in
:mod:`lla_studio.core.kernels.draft`.
"""

from lla_studio.gui.kernel_editor.editor import KernelGraphEditor
from lla_studio.gui.kernel_editor.preview import PriorPreviewPanel
from lla_studio.gui.kernel_editor.wizard import HandsOnWizard

__all__ = ["HandsOnWizard", "KernelGraphEditor", "PriorPreviewPanel"]
