/**
 * A bag-of-words multinomial Naive Bayes classifier: the baseline any text classifier should beat,
 * for the claim bench's table. Words are lower-cased runs of letters, digits and apostrophes; each
 * class's word probabilities are smoothed with add-one (Laplace) counts over the training
 * vocabulary, and a word never seen in training is ignored. Deterministic: no seed.
 *
 * Written here rather than taken from a library: it is twenty lines, and the npm packages that
 * offer it tokenize and smooth in ways of their own that the table would then have to describe.
 */
export interface LabelledText {
  text: string;
  label: string;
}

export function words(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? [];
}

export class NaiveBayes {
  private readonly logPrior = new Map<string, number>();
  private readonly logLikelihood = new Map<string, Map<string, number>>();
  private readonly unseen = new Map<string, number>();

  constructor(train: readonly LabelledText[]) {
    const vocabulary = new Set<string>();
    const counts = new Map<string, Map<string, number>>();
    const totals = new Map<string, number>();
    const docs = new Map<string, number>();
    for (const { text, label } of train) {
      docs.set(label, (docs.get(label) ?? 0) + 1);
      const perLabel = counts.get(label) ?? new Map<string, number>();
      counts.set(label, perLabel);
      for (const w of words(text)) {
        vocabulary.add(w);
        perLabel.set(w, (perLabel.get(w) ?? 0) + 1);
        totals.set(label, (totals.get(label) ?? 0) + 1);
      }
    }
    for (const [label, n] of docs) {
      this.logPrior.set(label, Math.log(n / train.length));
      const denominator = (totals.get(label) ?? 0) + vocabulary.size;
      const table = new Map<string, number>();
      for (const [w, c] of counts.get(label)!) table.set(w, Math.log((c + 1) / denominator));
      this.logLikelihood.set(label, table);
      this.unseen.set(label, Math.log(1 / denominator));
    }
  }

  predict(text: string): string {
    let best = '';
    let bestScore = -Infinity;
    const tokens = words(text);
    for (const [label, prior] of this.logPrior) {
      const table = this.logLikelihood.get(label)!;
      let score = prior;
      for (const w of tokens) {
        if (!this.known(w)) continue;
        score += table.get(w) ?? this.unseen.get(label)!;
      }
      if (score > bestScore) [best, bestScore] = [label, score];
    }
    return best;
  }

  accuracy(examples: readonly LabelledText[]): number {
    return examples.filter((e) => this.predict(e.text) === e.label).length / examples.length;
  }

  private known(word: string): boolean {
    for (const table of this.logLikelihood.values()) if (table.has(word)) return true;
    return false;
  }
}
