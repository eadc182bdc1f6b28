/**
 * Small DOM helpers for the sidebar.
 */
import { LabIcon } from '@jupyterlab/ui-components';

/** An element with attributes (`class` sets the class name) and children (null ones skipped). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') {
      node.className = value;
    } else {
      node.setAttribute(key, value);
    }
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child);
    }
  }
  return node;
}

export function iconNode(icon: LabIcon): HTMLElement {
  return icon.element({ tag: 'span', className: 'jp-ServingPanel-icon', elementSize: 'small' });
}
